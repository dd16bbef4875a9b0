#!/usr/bin/env bash
# CI (issue 29): the release archive and the Debian package work on a machine without Rust's tree.
#
#   1. scripts/package.sh --deb builds dist/mtp-<version>-<target>.tar.gz and dist/mtp_<version>_<arch>.deb;
#   2. the archive, unpacked into a temporary prefix: `<prefix>/bin/mtp --version`, `integrations list`
#      (every bundled provider loaded from <prefix>/lib/mtp/plugins, no --plugins-dir), `plugin check` of
#      each packaged library, `demo`; completions and manual pages are there;
#   3. the package: lintian (errors fail), every shared library its ELF files need resolves and its
#      Depends names libc6; `apt-get install ./mtp_*.deb`, the same checks from /usr/bin/mtp, `man -w`;
#      `apt-get remove mtp` leaves none of its files or directories behind.
#
# Needs Debian/Ubuntu with apt and root (or sudo); installs cargo-deb, lintian and jq when missing. The
# machine's own mtp installation, if any, is refused rather than replaced.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS

sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"

say() { printf '== %s\n' "$*"; }
fail() { printf 'package-check: FAILED: %s\n' "$*" >&2; exit 1; }

if dpkg-query -W -f='${Status}' mtp 2>/dev/null | grep -q " installed$"; then
  fail "a package named mtp is already installed here; remove it first (apt-get remove mtp)"
fi
missing=()
command -v jq >/dev/null || missing+=(jq)
command -v lintian >/dev/null || missing+=(lintian)
command -v man >/dev/null || missing+=(man-db)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! command -v cargo-deb >/dev/null; then
  say "installing cargo-deb"
  cargo install --locked cargo-deb
fi

say "scripts/package.sh --deb"
scripts/package.sh --deb
version="$(cargo pkgid -p mtp-host | sed 's/.*[#@]//')"
target="$(rustc -vV | sed -n 's/^host: //p')"
archive="dist/mtp-$version-$target.tar.gz"
deb="$(ls dist/mtp_"$version"_*.deb)"
[ -f "$archive" ] || fail "no $archive"
[ "$(printf '%s\n' "$deb" | wc -l)" = 1 ] || fail "expected one .deb for $version in dist/, found: $deb"

# The providers that must be found: every plugins/<dir> crate that is a workspace member.
expected=0
for manifest in plugins/*/Cargo.toml; do
  grep -q '^\[workspace\]' "$manifest" || expected=$((expected + 1))
done

scratch="$(mktemp -d)"
cleanup() {
  if dpkg-query -W -f='${Status}' mtp 2>/dev/null | grep -q " installed$"; then
    $sudo apt-get remove -y -qq mtp >/dev/null || true
  fi
  rm -rf "$scratch"
}
trap cleanup EXIT

# Runs the packaged mtp in an empty directory with an empty home: no .env, no plugins of the user's.
run_mtp() {
  local mtp="$1"; shift
  (cd "$scratch/cwd" && env -u MTP_PLUGINS_DIR -u MTP_STATE_DIR HOME="$scratch/home" \
    XDG_DATA_HOME="$scratch/home/.local/share" "$mtp" "$@")
}

# check_installation MTP PLUGIN_DIR: the checks of point 3 of issue 29 for one installed copy.
check_installation() {
  local mtp="$1" plugin_dir="$2"
  rm -rf "$scratch/cwd" "$scratch/home" "$scratch/demo"
  mkdir -p "$scratch/cwd" "$scratch/home"

  local version_text
  version_text="$(run_mtp "$mtp" --version)"
  printf '%s\n' "$version_text"
  grep -q "^mtp $version\$" <<<"$version_text" || fail "$mtp --version does not say $version"
  grep -q "^plugin API [0-9]" <<<"$version_text" || fail "$mtp --version does not name the plugin API"
  grep -q "^target $target\$" <<<"$version_text" || fail "$mtp --version does not name $target"

  run_mtp "$mtp" integrations list
  local list
  list="$(run_mtp "$mtp" integrations list --json)"
  local loaded from_dir
  loaded="$(jq '[.[] | select(.loaded)] | length' <<<"$list")"
  [ "$loaded" = "$expected" ] || fail "$mtp loaded $loaded providers, expected $expected: $(jq -c '[.[] | {id, loaded, reason, path}]' <<<"$list")"
  from_dir="$(jq -r --arg dir "$plugin_dir" '[.[] | select((.path | startswith($dir + "/")) | not) | .path] | join(", ")' <<<"$list")"
  [ -z "$from_dir" ] || fail "$mtp loaded plugins from outside $plugin_dir: $from_dir"

  local library count=0
  for library in "$plugin_dir"/*; do
    local report
    report="$(run_mtp "$mtp" plugin check "$library")" || { printf '%s\n' "$report"; fail "$mtp refuses $library"; }
    printf '%s\n' "${report%%$'\n'*}"
    count=$((count + 1))
  done
  [ "$count" = "$expected" ] || fail "$plugin_dir holds $count files, expected $expected providers"

  run_mtp "$mtp" demo --dir "$scratch/demo" >"$scratch/demo.log" 2>&1 \
    || { cat "$scratch/demo.log"; fail "$mtp demo failed"; }
  tail -n 4 "$scratch/demo.log"
  grep -q "^demo complete" "$scratch/demo.log" || fail "$mtp demo did not complete"
}

say "the archive $archive ($(du -h "$archive" | cut -f1)), unpacked into a temporary prefix"
prefix="$scratch/prefix"
mkdir -p "$prefix"
tar -xzf "$archive" -C "$prefix" --strip-components=1
for file in bin/mtp bin/mtp-fakes share/man/man1/mtp.1.gz share/bash-completion/completions/mtp \
  share/zsh/site-functions/_mtp share/fish/vendor_completions.d/mtp.fish share/doc/mtp/README.md \
  share/doc/mtp/LICENSE-MIT share/doc/mtp/LICENSE-APACHE; do
  [ -s "$prefix/$file" ] || fail "the archive has no $file"
done
check_installation "$prefix/bin/mtp" "$prefix/lib/mtp/plugins"

say "the package $deb ($(du -h "$deb" | cut -f1))"
dpkg-deb --info "$deb" | sed -n '/Package:/,$p'
dpkg-deb -f "$deb" Depends | grep -q 'libc6' || fail "$deb does not depend on libc6"
# Every ELF file's shared libraries resolve on this machine (what Depends must cover).
dpkg-deb -x "$deb" "$scratch/deb-tree"
while IFS= read -r -d '' elf; do
  if ldd "$elf" | grep -q "not found"; then
    ldd "$elf"
    fail "$elf needs a library that is not installed"
  fi
done < <(find "$scratch/deb-tree" -type f \( -name '*.so' -o -perm -u+x \) -print0)
say "lintian"
# no-changelog: mtp keeps no Debian changelog (its versions come from Cargo.toml and its history is git);
# writing one is the first thing to do before the package goes into an archive.
lintian --fail-on error --suppress-tags no-changelog "$deb" || fail "lintian reports errors in $deb"

say "apt-get install ./$deb"
$sudo apt-get install -y -qq "./$deb" >/dev/null
command -v mtp | grep -qx /usr/bin/mtp || fail "mtp is not /usr/bin/mtp after installing"
man -w mtp >/dev/null || fail "man -w mtp finds no manual page"
check_installation /usr/bin/mtp /usr/lib/mtp/plugins
dpkg-query -L mtp >"$scratch/files"

say "apt-get remove mtp"
$sudo apt-get remove -y -qq mtp >/dev/null
if dpkg-query -W -f='${Status}' mtp 2>/dev/null | grep -q " installed$"; then
  fail "mtp is still installed after apt-get remove"
fi
left=""
while IFS= read -r path; do
  case "$path" in
    /. | /usr | /usr/bin | /usr/lib | /usr/share | /usr/share/doc | /usr/share/man | /usr/share/man/man1 | \
      /usr/share/bash-completion | /usr/share/bash-completion/completions | /usr/share/zsh | \
      /usr/share/zsh/vendor-completions | /usr/share/fish | /usr/share/fish/vendor_completions.d) ;;
    *) [ -e "$path" ] && left="$left $path" ;;
  esac
done <"$scratch/files"
[ -z "$left" ] || fail "left behind after apt-get remove:$left"

say "package-check passed in $((SECONDS - started)) s (archive $(du -h "$archive" | cut -f1), package $(du -h "$deb" | cut -f1))"
