#!/usr/bin/env bash
# Builds the desktop (Linux) JNI library under NativeEngine against the executorch wheel:
#
#   android_bridge/native/build_native.sh OUT_DIR
#
# writes OUT_DIR/libprp_native.so (linked to the wheel's libexecutorch.so, optimized kernels,
# XNNPACK backend and thread pool, found at run time through an rpath to the wheel), and
# compiles the Java side for tests: OUT_DIR/classes (InferenceEngine + NativeEngine) and
# OUT_DIR/test-classes (NativeEngineCheck). Needs g++ (C++17), a JDK and a Python environment
# with executorch installed ($PYTHON, else the repository's .venv, else python3). No network.
# For Android, build the same source with CMakeLists.txt and the NDK instead.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 OUT_DIR" >&2
    exit 2
fi
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
mkdir -p "$1"
OUT="$(cd "$1" && pwd)"

if [ -z "${PYTHON:-}" ]; then
    if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
# executorch is a namespace package (no __init__.py), so its folder comes from __path__.
ET="$("$PYTHON" -c 'import executorch; print(list(executorch.__path__)[0])' 2>/dev/null)" || {
    echo "build_native.sh: executorch is not importable by $PYTHON (set PYTHON=...)" >&2
    exit 1
}
ET_LIB="$ET/lib"
ET_INCLUDE="$ET/include"
for f in "$ET_INCLUDE/executorch/extension/module/module.h" "$ET_LIB/libexecutorch.so" \
    "$ET_LIB/libexecutorch_kernels_optimized.so" "$ET_LIB/libexecutorch_backend_xnnpack.so" \
    "$ET_LIB/libexecutorch_threadpool.so"; do
    if [ ! -f "$f" ]; then
        echo "build_native.sh: $f is missing; this executorch wheel cannot build a native runner" >&2
        exit 1
    fi
done

if [ -z "${JAVA_HOME:-}" ]; then
    JAVAC="$(command -v javac)" || { echo "build_native.sh: javac not found (install a JDK)" >&2; exit 1; }
    JAVA_HOME="$(dirname "$(dirname "$(readlink -f "$JAVAC")")")"
fi
if [ ! -f "$JAVA_HOME/include/jni.h" ]; then
    echo "build_native.sh: $JAVA_HOME/include/jni.h not found (set JAVA_HOME to a JDK)" >&2
    exit 1
fi
CXX="${CXX:-g++}"

# The kernel and backend libraries register themselves with the runtime when loaded, and nothing
# references them by symbol, so they are linked with --no-as-needed to keep them as dependencies.
# C10_USING_CUSTOM_GENERATED_MACROS and ET_EVENT_TRACER_ENABLED are what the wheel was built with
# (its executorch-config.cmake says so); without the second, Module's layout would differ.
"$CXX" -std=c++17 -O2 -fPIC -shared -fvisibility=hidden -Wall -Wextra \
    -DC10_USING_CUSTOM_GENERATED_MACROS -DET_EVENT_TRACER_ENABLED \
    -isystem "$ET_INCLUDE" -isystem "$ET_INCLUDE/executorch/runtime/core/portable_type/c10" \
    -I"$JAVA_HOME/include" -I"$JAVA_HOME/include/linux" \
    "$HERE/prp_native.cpp" \
    -o "$OUT/libprp_native.so.tmp" \
    -L"$ET_LIB" -Wl,--enable-new-dtags,-rpath,"$ET_LIB" \
    -Wl,--no-as-needed -lexecutorch_kernels_optimized -lexecutorch_backend_xnnpack \
    -lexecutorch_threadpool -Wl,--as-needed -lexecutorch -Wl,--no-undefined
mv "$OUT/libprp_native.so.tmp" "$OUT/libprp_native.so"

JAVAC="$JAVA_HOME/bin/javac"
rm -rf "$OUT/classes" "$OUT/test-classes"
"$JAVAC" --release 8 -Xlint:-options -d "$OUT/classes" \
    "$ROOT/android_bridge/src/main/java/org/prpnas/bridge/InferenceEngine.java" \
    "$HERE/java/org/prpnas/bridge/NativeEngine.java"
"$JAVAC" --release 8 -Xlint:-options -cp "$OUT/classes" -d "$OUT/test-classes" \
    "$HERE/test/java/org/prpnas/bridge/NativeEngineCheck.java"
echo "built $OUT/libprp_native.so, $OUT/classes, $OUT/test-classes"
