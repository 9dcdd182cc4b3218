#!/usr/bin/env bash
# Linker stubs that bind the CUDA runtime's glibc references to their pre-2.34 versions
# (custom_op/cuda/glibc_compat.cmake runs this; see there for the why).
#
#   glibc_stubs.sh stubs OUTDIR CC OBJDUMP NM LIBC TARGET ARCHIVE...
#       For every symbol the ARCHIVEs (libcudart_static.a) leave undefined that LIBC
#       (libc.so.6) exports with a default version newer than GLIBC_<TARGET> and also under
#       older, hidden versions (the functions glibc 2.34 moved into libc.so.6 from libpthread,
#       libdl, librt, libutil, libanl: pthread_create@@GLIBC_2.34 and
#       pthread_create@GLIBC_2.2.5), build OUTDIR/<old soname> (libpthread.so.0, libdl.so.2,
#       librt.so.1, ...) defining it under the newest of those older versions, the one it had
#       before the move (dlmopen -> 2.3.4; timer_create -> 2.3.3, not 2.2.5, the old ABI;
#       pthread_kill -> 2.2.5, which glibc >= 2.34 serves with its compat implementation).
#       That is what the archive was compiled for, and what NVIDIA's libcudart.so binds.
#       Prints the stubs' paths, one a line (none: nothing to rebind); a summary goes to
#       stderr. Exits 1 on any failure, e.g. a symbol to rebind whose old library is unknown.
#   glibc_stubs.sh check OBJDUMP LIBC TARGET LIBRARY
#       Exits 1 (and renames LIBRARY to LIBRARY.glibc-rejected, so no build step takes it for
#       a good one) if LIBRARY still binds one of those symbols to its new default version.
#
# Needs bash, awk (mawk or gawk), GNU sort, and binutils' objdump and nm.
set -euo pipefail

die() { echo "glibc_stubs.sh: $*" >&2; exit 1; }

# "name default_version old_version kind size" for every symbol of LIBC whose default version
# is newer than GLIBC_TARGET and which LIBC also has under an older, hidden version.
movable() {
  local objdump=$1 libc=$2 target=$3 out
  out=$("$objdump" -T "$libc") || die "$objdump -T $libc failed"
  awk -v target="GLIBC_$target" '
    function vlt(a, b,   x, y, n, m, i) {  # GLIBC_a < GLIBC_b
      sub(/^GLIBC_/, "", a); sub(/^GLIBC_/, "", b)
      n = split(a, x, "."); m = split(b, y, ".")
      for (i = 1; i <= (n > m ? n : m); i++)
        if ((x[i] + 0) != (y[i] + 0)) return (x[i] + 0) < (y[i] + 0)
      return 0
    }
    function hex(s,   i, n) {  # mawk has no strtonum
      n = 0
      for (i = 1; i <= length(s); i++) n = n * 16 + index("0123456789abcdef", tolower(substr(s, i, 1))) - 1
      return n
    }
    NF < 4 || /\*UND\*|\*ABS\*/ { next }
    $(NF-1) ~ /^\(?GLIBC_[0-9.]+\)?$/ {
      name = $NF; v = $(NF-1); hidden = (v ~ /^\(/); gsub(/[()]/, "", v)
      if (hidden) { n = ++cnt[name]; hv[name, n] = v }
      else { def[name] = v; kind[name] = ($0 ~ / DO /) ? "data" : "func"
             size[name] = hex($(NF-2)) }
    }
    END {
      for (name in def) {
        if (!vlt(target, def[name])) continue
        best = ""
        for (i = 1; i <= cnt[name]; i++)
          if (vlt(hv[name, i], def[name]) &&
              (best == "" || vlt(best, hv[name, i])))
            best = hv[name, i]
        if (best != "") print name, def[name], best, kind[name], size[name]
      }
    }' <<<"$out" | sort
}

# The library a moved symbol lived in before glibc 2.34 (the soname its stub gets).
soname_of() {
  case $1 in
    dlopen|dlclose|dlsym|dlvsym|dlerror|dladdr|dladdr1|dlinfo|dlmopen) echo libdl.so.2 ;;
    shm_*|mq_*|timer_*|aio_*|lio_listio*|clock_*) echo librt.so.1 ;;
    forkpty|openpty|login|login_tty|logout|logwtmp) echo libutil.so.1 ;;
    getaddrinfo_a|gai_cancel|gai_error|gai_suspend) echo libanl.so.1 ;;
    pthread_*|__pthread_*|_pthread_*|sem_*|thrd_*|mtx_*|cnd_*|tss_*|call_once) echo libpthread.so.0 ;;
    *) return 1 ;;
  esac
}

cmd_stubs() {
  (( $# >= 7 )) || die "usage: stubs OUTDIR CC OBJDUMP NM LIBC TARGET ARCHIVE..."
  local outdir=$1 cc=$2 objdump=$3 nm=$4 libc=$5 target=$6; shift 6
  local table undef archive
  table=$(movable "$objdump" "$libc" "$target")
  undef=""
  for archive in "$@"; do
    [[ -f $archive ]] || die "no such archive: $archive"
    undef+=$("$nm" -u -P "$archive" | awk '$2 ~ /^[Uw]$/ { sub(/@.*/, "", $1); print $1 }') \
      || die "$nm -u $archive failed"
    undef+=$'\n'
  done
  # Built in $work, then moved into OUTDIR where changed (unchanged stubs keep their mtime:
  # no relink on every configure).
  work="$outdir.tmp"
  rm -rf "$work"
  mkdir -p "$work"
  trap 'rm -rf "$work"' EXIT
  # name default old kind size soname, for the symbols the archives use
  local picked="" name def old kind size soname unknown=""
  while read -r name def old kind size; do
    [[ -n $name ]] || continue
    if ! soname=$(soname_of "$name"); then unknown+=" $name@@$def"; continue; fi
    picked+="$name $def $old $kind $size $soname"$'\n'
  done < <(awk 'NR == FNR { used[$1] = 1; next } $1 in used' <(echo "$undef") <(echo "$table"))
  [[ -z $unknown ]] || die "no known pre-2.34 library for:$unknown (extend soname_of)"
  if [[ -z $picked ]]; then
    rm -rf "$work" "$outdir"
    echo "glibc_stubs.sh: no symbol newer than GLIBC_$target to rebind" >&2
    return 0
  fi
  local lib src map ver
  for lib in $(awk 'NF { print $6 }' <<<"$picked" | sort -u); do
    src="$work/${lib%%.so*}.c"; map="$work/${lib%%.so*}.map"
    {
      echo "/* Generated by glibc_stubs.sh: link-time stub for $lib, never shipped. */"
      awk -v lib="$lib" '$6 == lib {
        if ($4 == "data") printf "char %s[%d];\n", $1, ($5 > 0 ? $5 : 1)
        else printf "void %s(void) {}\n", $1 }' <<<"$picked"
    } >"$src"
    local prev=""
    : >"$map"
    for ver in $(awk -v lib="$lib" '$6 == lib { print $3 }' <<<"$picked" | sort -u -V); do
      {
        echo "$ver {"
        echo "  global:"
        awk -v lib="$lib" -v ver="$ver" '$6 == lib && $3 == ver { print "    " $1 ";" }' <<<"$picked"
        [[ -n $prev ]] || echo "  local: *;"
        echo "}${prev:+ $prev};"
      } >>"$map"
      prev=$ver
    done
    "$cc" -shared -fPIC -nostdlib -fno-builtin -w -o "$work/$lib" \
      "-Wl,-soname,$lib" "-Wl,--version-script,$map" -x c "$src" \
      || die "compiling the $lib stub failed ($cc)"
    # The stub must define each symbol under exactly the version asked for.
    local got want
    got=$("$objdump" -T "$work/$lib" | awk 'NF >= 4 && $(NF-1) ~ /^GLIBC_/ && $0 !~ /\*ABS\*/ { print $NF "@@" $(NF-1) }' | sort)
    want=$(awk -v lib="$lib" '$6 == lib { print $1 "@@" $3 }' <<<"$picked" | sort)
    [[ $got == "$want" ]] || die "$work/$lib defines"$'\n'"$got"$'\n'"instead of"$'\n'"$want"
    echo "glibc_stubs.sh: $lib: $(awk -v lib="$lib" '$6 == lib { n++; v[$3] = 1 } END {
      for (x in v) s = s " " x; print n " symbols @" s }' <<<"$picked")" >&2
  done
  mkdir -p "$outdir"
  local f
  for f in "$outdir"/*; do [[ ! -e $f || -e $work/${f##*/} ]] || rm -f "$f"; done
  for f in "$work"/*; do
    cmp -s "$f" "$outdir/${f##*/}" || mv -f "$f" "$outdir/"
  done
  rm -rf "$work"
  for lib in $(awk 'NF { print $6 }' <<<"$picked" | sort -u); do echo "$outdir/$lib"; done
}

cmd_check() {
  (( $# == 4 )) || die "usage: check OBJDUMP LIBC TARGET LIBRARY"
  local objdump=$1 libc=$2 target=$3 library=$4 table refs bad
  table=$(movable "$objdump" "$libc" "$target")
  refs=$("$objdump" -T "$library" | awk 'NF >= 4 && /\*UND\*/ && $(NF-1) ~ /^\(?GLIBC_/ { v = $(NF-1); gsub(/[()]/, "", v); print $NF, v }') \
    || die "$objdump -T $library failed"
  bad=$(awk 'NR == FNR { def[$1] = $2; next } ($1 in def) && def[$1] == $2 { print "  " $1 "@" $2 }' \
        <(echo "$table") <(echo "$refs"))
  if [[ -n $bad ]]; then
    mv -f "$library" "$library.glibc-rejected"
    die "$library (now $library.glibc-rejected) still binds these to glibc's new versions, so it" \
        "would not load on older glibc; the linker stubs (glibc_compat.cmake) missed them:"$'\n'"$bad"
  fi
}

mode=${1:-}; shift || true
case $mode in
  stubs) cmd_stubs "$@" ;;
  check) cmd_check "$@" ;;
  *) die "usage: glibc_stubs.sh stubs|check ..." ;;
esac
