package org.prpnas.bridge;

import java.io.File;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashSet;
import java.util.Set;
import java.util.concurrent.locks.ReentrantReadWriteLock;

/**
 * An {@link InferenceEngine} over ExecuTorch's C++ runtime, through JNI ({@code libprp_native}).
 *
 * <p>The program is opened once. By default every method is loaded up front ({@link
 * Residency#ALL}), so switching paths reloads nothing; calls of one method are serialised in native
 * code (an ExecuTorch method is not re-entrant) and calls of different methods run in parallel.
 * With {@link Residency#ACTIVE} only the method last run is loaded: a run of another method first
 * unloads it and loads its own, and runs are serialised. That holds one path's XNNPACK runtime
 * instead of every path's, for a load on each switch (bench/results, "Residency").
 *
 * <p>The native library is found through the system property {@code prp.native.lib} (a path to
 * {@code libprp_native.so}) where set, else by {@link System#loadLibrary} under the name
 * {@code prp_native} (on Android, from the app's {@code jniLibs}).
 */
public final class NativeEngine implements InferenceEngine {
    /** System property naming the native library file, for desktop use and tests. */
    public static final String LIBRARY_PROPERTY = "prp.native.lib";

    private static final Object LIBRARY_LOCK = new Object();
    private static boolean libraryLoaded;

    /** Which of the program's methods stay loaded. */
    public enum Residency {
        /** Every method, loaded when the program opens: switching costs nothing. */
        ALL,
        /**
         * Only the method last run: the least memory, for a load (and XNNPACK's packing of the
         * weights no loaded method shares) on each switch. Suits paths switched by battery level
         * or schedule, which run one path for a long time.
         */
        ACTIVE
    }

    private final String path;
    private final Residency residency;
    private final Set<String> methods;
    // Runs hold the read lock, close() the write lock: close waits for runs in flight, and no
    // run can reach a freed native engine.
    private final ReentrantReadWriteLock lifecycle = new ReentrantReadWriteLock();
    private long handle;

    private NativeEngine(String path, Residency residency, long handle, String[] names) {
        this.path = path;
        this.residency = residency;
        this.handle = handle;
        this.methods = Collections.unmodifiableSet(new LinkedHashSet<String>(Arrays.asList(names)));
    }

    /**
     * Opens an ExecuTorch program ({@code .pte}) and loads all of its methods.
     *
     * @throws FileNotFoundException if there is no file at {@code ptePath}
     * @throws IOException if the file is not a loadable ExecuTorch program (truncated, corrupt)
     * @throws IllegalStateException if this native runtime cannot run the program (a missing
     *     kernel or delegate), the native library cannot be loaded, or, with XNNPACK's weight
     *     cache on, its weight names could collide with an open program's (see {@link
     *     #setWeightCache})
     */
    public static NativeEngine load(String ptePath) throws IOException {
        return load(ptePath, Residency.ALL);
    }

    /**
     * Opens an ExecuTorch program ({@code .pte}) with the given {@link Residency}. With {@link
     * Residency#ACTIVE} each method is still loaded once here, then unloaded, so that a program
     * this runtime cannot run is refused at once, as with {@link Residency#ALL}.
     *
     * @throws FileNotFoundException if there is no file at {@code ptePath}
     * @throws IOException if the file is not a loadable ExecuTorch program (truncated, corrupt)
     * @throws IllegalStateException as {@link #load(String)}
     */
    public static NativeEngine load(String ptePath, Residency residency) throws IOException {
        if (ptePath == null) {
            throw new IllegalArgumentException("ptePath must not be null");
        }
        if (residency == null) {
            throw new IllegalArgumentException("residency must not be null");
        }
        File file = new File(ptePath);
        if (!file.isFile()) {
            throw new FileNotFoundException("no ExecuTorch program at " + file.getAbsolutePath());
        }
        loadLibrary();
        String absolute = file.getAbsolutePath();
        long handle = nativeOpen(absolute, residency == Residency.ACTIVE);
        String[] names;
        try {
            names = nativeMethods(handle);
        } catch (RuntimeException e) {
            nativeClose(handle);
            throw e;
        }
        return new NativeEngine(absolute, residency, handle, names);
    }

    /** Loads {@code libprp_native} once per class loader (see the class comment for where from). */
    public static void loadLibrary() {
        synchronized (LIBRARY_LOCK) {
            if (libraryLoaded) {
                return;
            }
            String file = System.getProperty(LIBRARY_PROPERTY);
            try {
                if (file != null && !file.isEmpty()) {
                    System.load(new File(file).getAbsolutePath());
                } else {
                    System.loadLibrary("prp_native");
                }
            } catch (UnsatisfiedLinkError e) {
                throw new IllegalStateException(
                        "cannot load the native library "
                                + (file != null && !file.isEmpty() ? file : "prp_native")
                                + " ("
                                + e.getMessage()
                                + "); build it with android_bridge/native/build_native.sh and"
                                + " pass -D"
                                + LIBRARY_PROPERTY
                                + "=/path/to/libprp_native.so",
                        e);
            }
            libraryLoaded = true;
        }
    }

    /** The threads ExecuTorch's CPU thread pool (XNNPACK's) runs with, for every engine. */
    public static int threads() {
        loadLibrary();
        return nativeThreadCount();
    }

    /**
     * Sets the threads of ExecuTorch's CPU thread pool, which every engine of the process shares
     * (what {@code ExecuTorchEngine.open(program, threads)} does on Android). Call it before any
     * run is in flight: ExecuTorch does not guard a reset against running methods.
     *
     * @return the thread count now in use
     * @throws IllegalArgumentException if {@code count < 1}
     */
    public static int setThreads(int count) {
        if (count < 1) {
            throw new IllegalArgumentException("threads must be >= 1, got " + count);
        }
        loadLibrary();
        return nativeSetThreads(count);
    }

    /**
     * Turns XNNPACK's weight cache on or off for the programs loaded from now on (a process-wide
     * backend option). On by default: a weight several methods of the program share is then packed
     * once and held once in memory, as ExecuTorch's Android and Apple builds do; off, each method
     * packs its own copy (the desktop wheel's Python runtime, which cannot switch it). ExecuTorch
     * 1.5.1's cache keys packed weights by name only, process-wide. Programs whose weights are
     * named by their bytes (a sha256 prefix, as {@code prp-export} names them now) may be open
     * together, sharing packed weights only where the bytes are the same. A program that names
     * them otherwise (bundles exported before, {@code w0}, {@code w1}, ..., alike in every bundle)
     * is opened only while no other program is, and {@link #load} refuses any other while it is
     * open (close it first, export its bundle again, or turn the cache off before loading both).
     *
     * @return whether the cache is on now
     */
    public static boolean setWeightCache(boolean enabled) {
        loadLibrary();
        return nativeSetWeightCache(enabled);
    }

    /** Whether XNNPACK's weight cache is on for programs loaded from now on. */
    public static boolean weightCache() {
        loadLibrary();
        return nativeWeightCache();
    }

    /** The absolute path of the loaded program. */
    public String path() {
        return path;
    }

    /** Which methods stay loaded. */
    public Residency residency() {
        return residency;
    }

    @Override
    public Set<String> methods() {
        return methods;
    }

    /** The input shape {@code method} was exported with, e.g. {@code {1, 3, 32, 32}}. */
    public long[] inputShape(String method) {
        lifecycle.readLock().lock();
        try {
            return nativeInputShape(openHandle(), method);
        } finally {
            lifecycle.readLock().unlock();
        }
    }

    /**
     * {@inheritDoc}
     *
     * <p>Takes the program's own input shape, or, for a program exported at batch 1, a batch
     * {@code [N, ...]} of such rows (run one after another).
     */
    @Override
    public float[] run(String method, float[] input, long[] shape) {
        if (method == null || !methods.contains(method)) {
            throw new IllegalArgumentException(
                    "unknown method '" + method + "'; the program has: " + String.join(", ", methods));
        }
        if (input == null || shape == null) {
            throw new IllegalArgumentException("input and shape must not be null");
        }
        long count = 1;
        for (long d : shape) {
            if (d < 1) {
                throw new IllegalArgumentException("bad shape " + Arrays.toString(shape));
            }
            count *= d;
        }
        if (count != input.length) {
            throw new IllegalArgumentException(
                    "input has " + input.length + " values; shape " + Arrays.toString(shape)
                            + " needs " + count);
        }
        lifecycle.readLock().lock();
        try {
            return nativeRun(openHandle(), method, input, shape);
        } finally {
            lifecycle.readLock().unlock();
        }
    }

    /** Frees the native program; waits for runs in flight. Calling it again does nothing. */
    @Override
    public void close() {
        lifecycle.writeLock().lock();
        try {
            if (handle != 0) {
                nativeClose(handle);
                handle = 0;
            }
        } finally {
            lifecycle.writeLock().unlock();
        }
    }

    @Override
    public String toString() {
        return "NativeEngine(" + path + ", methods=" + methods + ", residency=" + residency
                + (handle == 0 ? ", closed)" : ")");
    }

    private long openHandle() {
        if (handle == 0) {
            throw new IllegalStateException("NativeEngine for " + path + " is closed");
        }
        return handle;
    }

    private static native long nativeOpen(String path, boolean activeOnly) throws IOException;

    private static native String[] nativeMethods(long handle);

    private static native long[] nativeInputShape(long handle, String method);

    private static native float[] nativeRun(long handle, String method, float[] input, long[] shape);

    private static native void nativeClose(long handle);

    private static native int nativeThreadCount();

    private static native boolean nativeSetWeightCache(boolean enabled);

    private static native boolean nativeWeightCache();

    private static native int nativeSetThreads(int count);
}
