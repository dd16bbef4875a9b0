#!/usr/bin/env bash
# Builds a release of mtp that needs no Rust to run:
#
#   scripts/package.sh [--target TRIPLE] [--deb] [--no-build]
#
# (MTP_PACKAGE_SIGN=COMMAND: run COMMAND on the staged tree before it is archived, to sign it.)
#
#   dist/mtp-<version>-<target>.tar.gz   (Linux, macOS; .zip on Windows), holding
#     bin/mtp, bin/mtp-fakes                      (mtp.exe, mtp-fakes.exe at the top on Windows)
#     lib/mtp/plugins/<the bundled providers>     (beside mtp.exe on Windows)
#     share/man/man1/mtp*.1.gz, share/bash-completion/completions/mtp,
#     share/zsh/site-functions/_mtp, share/fish/vendor_completions.d/mtp.fish (Windows: _mtp.ps1)
#     share/doc/mtp/README.md, LICENSE-MIT, LICENSE-APACHE
#   dist/mtp_<version>_<arch>.deb        (with --deb; Linux only; cargo-deb, config in host/Cargo.toml)
#
# The tree is laid out as an installation prefix: unpacked anywhere, `<prefix>/bin/mtp` finds its plugins
# at `<prefix>/lib/mtp/plugins` (README, "Where plugins are found"). The bundled providers are every
# workspace crate under plugins/ (plugins/template is a separate workspace: a crate to copy, not shipped).
# Completions and manual pages come from the built mtp itself (`mtp completions`, `mtp man-pages`), so a
# cross-compiled target whose binary cannot run here gets neither (the release workflow builds natively).
set -euo pipefail
cd "$(dirname "$0")/.."

target=""
deb=false
build=true
while [ $# -gt 0 ]; do
  case "$1" in
    --target) target="$2"; shift 2 ;;
    --deb) deb=true; shift ;;
    --no-build) build=false; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "package.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

host_target="$(rustc -vV | sed -n 's/^host: //p')"
target="${target:-$host_target}"
version="$(cargo pkgid -p mtp-host | sed 's/.*[#@]//')"
target_dir="${CARGO_TARGET_DIR:-target}"
if [ "$target" = "$host_target" ]; then
  release_dir="$target_dir/release"
  target_flag=()
else
  release_dir="$target_dir/$target/release"
  target_flag=(--target "$target")
fi

case "$target" in
  *-windows-*) dll_prefix=""; dll_suffix=".dll"; exe=".exe"; windows=true ;;
  *-apple-*) dll_prefix="lib"; dll_suffix=".dylib"; exe=""; windows=false ;;
  *) dll_prefix="lib"; dll_suffix=".so"; exe=""; windows=false ;;
esac

# The bundled providers: plugins/<dir> crates that are workspace members (not their own workspace).
plugin_crates=()
for manifest in plugins/*/Cargo.toml; do
  grep -q '^\[workspace\]' "$manifest" && continue
  plugin_crates+=("$(sed -n 's/^name = "\(.*\)"/\1/p' "$manifest" | head -n1)")
done
[ ${#plugin_crates[@]} -gt 0 ] || { echo "package.sh: no provider crates under plugins/" >&2; exit 1; }

if $build; then
  packages=(-p mtp-host -p mtp-fakes)
  for crate in "${plugin_crates[@]}"; do packages+=(-p "$crate"); done
  echo "== cargo build --release ${target_flag[*]} ${packages[*]}"
  cargo build --release --locked "${target_flag[@]}" "${packages[@]}"
fi

# The tree both the archive and the Debian package are made from (cargo-deb's assets point into it).
stage="$release_dir/package/root"
rm -rf "$release_dir/package"
if $windows; then
  bin="$stage"; plugins="$stage"; doc="$stage"
else
  bin="$stage/bin"; plugins="$stage/lib/mtp/plugins"; doc="$stage/share/doc/mtp"
fi
mkdir -p "$bin" "$plugins" "$doc"
cp "$release_dir/mtp$exe" "$release_dir/mtp-fakes$exe" "$bin/"
for crate in "${plugin_crates[@]}"; do
  library="$dll_prefix${crate//-/_}$dll_suffix"
  cp "$release_dir/$library" "$plugins/"
  # Read and write, not executable: the host maps the libraries, it does not run them.
  chmod 644 "$plugins/$library"
done
cp README.md LICENSE-MIT LICENSE-APACHE "$doc/"

mtp_here="$bin/mtp$exe"
if "$mtp_here" --version >/dev/null 2>&1; then
  if $windows; then
    "$mtp_here" completions powershell >"$stage/_mtp.ps1"
  else
    mkdir -p "$stage/share/bash-completion/completions" "$stage/share/zsh/site-functions" \
      "$stage/share/fish/vendor_completions.d" "$stage/share/man/man1"
    "$mtp_here" completions bash >"$stage/share/bash-completion/completions/mtp"
    "$mtp_here" completions zsh >"$stage/share/zsh/site-functions/_mtp"
    "$mtp_here" completions fish >"$stage/share/fish/vendor_completions.d/mtp.fish"
    "$mtp_here" man-pages "$stage/share/man/man1"
    # Compressed, as Debian requires and every man(1) reads; -n: no name or time inside.
    gzip -9n "$stage"/share/man/man1/*.1
  fi
else
  echo "package.sh: $mtp_here does not run on this machine: no completions or manual pages" >&2
  $deb && { echo "package.sh: --deb needs them" >&2; exit 1; }
fi

# Signing (the macOS release: scripts/macos-sign.sh) happens on the staged tree, before it is archived.
if [ -n "${MTP_PACKAGE_SIGN:-}" ]; then
  echo "== $MTP_PACKAGE_SIGN $stage"
  "$MTP_PACKAGE_SIGN" "$stage"
fi

mkdir -p dist
name="mtp-$version-$target"
rm -rf "${release_dir:?}/package/$name"
cp -a "$stage" "$release_dir/package/$name"
if $windows; then
  archive="dist/$name.zip"
  rm -f "$archive"
  (cd "$release_dir/package" && 7z a -tzip -bd "$OLDPWD/$archive" "$name" >/dev/null)
else
  archive="dist/$name.tar.gz"
  # Owner and group 0, sorted names: the same tree gives the same listing on every machine.
  tar --sort=name --owner=0 --group=0 --numeric-owner -C "$release_dir/package" -czf "$archive" "$name" 2>/dev/null \
    || tar -C "$release_dir/package" -czf "$archive" "$name"
fi
echo "== $archive ($(du -h "$archive" | cut -f1))"

if $deb; then
  command -v cargo-deb >/dev/null || { echo "package.sh: --deb needs cargo-deb (cargo install --locked cargo-deb)" >&2; exit 1; }
  deb_flags=(-p mtp-host --no-build --output dist/)
  [ "$target" = "$host_target" ] || deb_flags+=(--target "$target")
  cargo deb "${deb_flags[@]}"
fi
