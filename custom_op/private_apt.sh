# Sourced (not run) by the scripts that fetch Debian packages without installing anything:
# custom_op/fetch_ort_headers.sh and scripts/aarch64/{fetch_toolchain,fetch_qemu,python_env}.sh.
# `apt-get download` against a private apt state (no root, the system's apt configuration is
# left alone), then `dpkg -x` by the caller.
#
#   private_apt APT_DIR MIRROR SUITE [ARCH]
#
# makes APT_DIR a fresh state (sources.list of "MIRROR SUITE main", for ARCH when given, an
# empty dpkg status) and sets APT_OPTS, the apt-get options that use only that state.
private_apt() {
  local apt=$1 mirror=$2 suite=$3 arch=${4:-}
  mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/etc/preferences.d" "$apt/deb"
  echo "deb ${arch:+[arch=$arch] }$mirror $suite main" > "$apt/etc/sources.list"
  : > "$apt/status"
  APT_OPTS=(
    -o "Dir::Etc::sourcelist=$apt/etc/sources.list"
    -o "Dir::Etc::sourceparts=-"
    -o "Dir::Etc::preferencesparts=$apt/etc/preferences.d"
    -o "Dir::State=$apt"
    -o "Dir::State::Lists=$apt/lists"
    -o "Dir::State::status=$apt/status"
    -o "Dir::Cache=$apt/cache"
    -o "APT::Sandbox::User=$(id -un)"
    -o "Debug::NoLocking=1"
    -q
  )
  if [[ -n $arch ]]; then
    APT_OPTS+=(-o "APT::Architecture=$arch" -o "APT::Architectures=$arch")
  fi
}
