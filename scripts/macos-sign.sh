#!/usr/bin/env bash
# Signs and notarises the staged macOS release tree (scripts/package.sh runs it through MTP_PACKAGE_SIGN
# in .github/workflows/release.yml). NOT RUN in this repository's CI, which builds for x86_64 Linux only.
#
#   scripts/macos-sign.sh STAGED_TREE
#
# Needs a keychain holding a "Developer ID Application" identity (MACOS_SIGN_IDENTITY) and notarytool
# credentials (APPLE_ID, APPLE_TEAM_ID, APPLE_APP_PASSWORD: an app-specific password).
#
# Why each step (Apple: "Notarizing macOS software before distribution", "Hardened Runtime"):
# - notarisation requires every Mach-O file to be signed with a Developer ID, a secure timestamp and the
#   hardened runtime (--options runtime);
# - under the hardened runtime, library validation refuses to map a library signed by another team or not
#   signed at all: mtp loads plugins that other people build, so mtp carries the
#   com.apple.security.cs.disable-library-validation entitlement (scripts/macos-entitlements.plist);
# - a bare executable or a .tar.gz cannot have a notarisation ticket stapled to it (only .app, .pkg and
#   .dmg can), so Gatekeeper looks the ticket up online the first time a quarantined file runs.
set -euo pipefail
tree="$1"
here="$(cd "$(dirname "$0")" && pwd)"
: "${MACOS_SIGN_IDENTITY:?the Developer ID Application identity to sign with}"

sign() {
  codesign --force --timestamp --options runtime --sign "$MACOS_SIGN_IDENTITY" "$@"
}
# Libraries first, then the executables that load them.
find "$tree" -name '*.dylib' -print0 | while IFS= read -r -d '' library; do sign "$library"; done
sign --entitlements "$here/macos-entitlements.plist" "$tree/bin/mtp"
sign "$tree/bin/mtp-fakes"
find "$tree" \( -name '*.dylib' -o -path '*/bin/*' \) -print0 | xargs -0 -n1 codesign --verify --strict

# notarytool takes a zip (or dmg, pkg) of what it should check.
submission="$(mktemp -d)/mtp-notarise.zip"
ditto -c -k --keepParent "$tree" "$submission"
xcrun notarytool submit "$submission" --apple-id "${APPLE_ID:?}" --team-id "${APPLE_TEAM_ID:?}" \
  --password "${APPLE_APP_PASSWORD:?}" --wait
