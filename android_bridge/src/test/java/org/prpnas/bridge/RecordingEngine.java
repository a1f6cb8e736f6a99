package org.prpnas.bridge;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/**
 * A stand-in for the ExecuTorch program in tests (the real one needs Android): offers the given
 * methods and answers every call with logits that name the method that ran, {@code k} for
 * {@code path_k} in every class, so a test can see which path produced each row. Records calls.
 */
final class RecordingEngine implements InferenceEngine {
    private final Set<String> methods;
    private final int classes;
    private final int pauseEvery;
    private final List<long[]> shapes = Collections.synchronizedList(new ArrayList<long[]>());
    private volatile boolean closed;
    private volatile int wrongLength = -1;

    RecordingEngine(Set<String> methods, int classes, int pauseEvery) {
        this.methods = Collections.unmodifiableSet(new LinkedHashSet<String>(methods));
        this.classes = classes;
        this.pauseEvery = pauseEvery;
    }

    /** An engine with methods path_0 .. path_{count-1} and 10 classes. */
    static RecordingEngine withPaths(int count) {
        Set<String> names = new LinkedHashSet<String>();
        for (int i = 0; i < count; i++) {
            names.add("path_" + i);
        }
        return new RecordingEngine(names, 10, 0);
    }

    /** Same, but yielding the thread inside every call, to widen race windows. */
    static RecordingEngine slow(int count) {
        RecordingEngine e = withPaths(count);
        return new RecordingEngine(e.methods, 10, 1);
    }

    /** Makes every later call return {@code length} values (a program that does not match). */
    void returnLength(int length) {
        wrongLength = length;
    }

    static int indexOf(String method) {
        return Integer.parseInt(method.substring(method.lastIndexOf('_') + 1));
    }

    @Override
    public Set<String> methods() {
        return methods;
    }

    @Override
    public float[] run(String method, float[] input, long[] shape) {
        if (closed) {
            throw new IllegalStateException("engine closed");
        }
        if (!methods.contains(method)) {
            throw new IllegalArgumentException("no method " + method);
        }
        shapes.add(shape.clone());
        if (pauseEvery > 0) {
            Thread.yield();
        }
        int rows = (int) shape[0];
        float[] out = new float[wrongLength >= 0 ? wrongLength : rows * classes];
        java.util.Arrays.fill(out, indexOf(method));
        return out;
    }

    /** The shapes of every call so far. */
    List<long[]> shapes() {
        synchronized (shapes) {
            return new ArrayList<long[]>(shapes);
        }
    }

    boolean isClosed() {
        return closed;
    }

    @Override
    public void close() {
        closed = true;
    }
}
