package org.prpnas.bridge;

import java.io.File;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashSet;
import java.util.Set;
import java.util.concurrent.locks.ReadWriteLock;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import org.pytorch.executorch.EValue;
import org.pytorch.executorch.Module;
import org.pytorch.executorch.Tensor;

/**
 * The bundle's {@code supernet.pte} run by ExecuTorch's Android Java API
 * ({@code org.pytorch.executorch.Module}, from the {@code executorch-android} AAR).
 *
 * <p>{@link #open} memory-maps the program and loads every method once, so a path switch never loads
 * anything. ExecuTorch's {@code Module} runs one call at a time (it holds its own lock), so calls
 * from several threads are serialised there; {@link #close()} waits for running calls to finish.
 *
 * <p>Compiled here against ExecuTorch's real {@code classes.jar}; it runs only on Android (or
 * wherever ExecuTorch's JNI library and fbjni load).
 */
public final class ExecuTorchEngine implements InferenceEngine {
    private final Module module;
    private final Set<String> methods;
    private final ReadWriteLock state = new ReentrantReadWriteLock();
    private boolean closed;

    private ExecuTorchEngine(Module module, Set<String> methods) {
        this.module = module;
        this.methods = methods;
    }

    /**
     * Opens the manifest's program ({@link Manifest#programFile()}): listed in the manifest (so its
     * sha256 was checked when the manifest was loaded with file checks), inside the bundle folder, a
     * regular file.
     */
    public static ExecuTorchEngine open(Manifest manifest) throws BundleException {
        return open(manifest.programFile());
    }

    /**
     * Loads {@code program} (memory-mapped) and every method in it.
     *
     * @param program a {@code .pte} file; prefer {@link #open(Manifest)}, which checks that it is the
     *     bundle's own, checksummed program
     * @throws BundleException if it is not a regular file, or ExecuTorch cannot load the program or
     *     one of its methods
     */
    public static ExecuTorchEngine open(File program) throws BundleException {
        return open(program, 0);
    }

    /**
     * As {@link #open(File)}, with ExecuTorch's CPU thread pool (XNNPACK's threads) set to
     * {@code threads}; 0 leaves ExecuTorch's default (one per performance core). The pool is
     * shared by the whole process. {@link OpProfiler} records the count in the cost table.
     */
    public static ExecuTorchEngine open(File program, int threads) throws BundleException {
        if (threads < 0) {
            throw new IllegalArgumentException("threads must be >= 0 (0: ExecuTorch's default), got " + threads);
        }
        if (!program.exists()) {
            throw new BundleException("bundle file " + program + " is missing; export the bundle again");
        }
        if (!program.isFile()) { // a FIFO or device would block ExecuTorch's loader
            throw new BundleException("bundle file " + program + " is not a regular file; export the bundle again");
        }
        Module module;
        try {
            module = Module.load(program.getAbsolutePath(), Module.LOAD_MODE_MMAP, threads);
        } catch (RuntimeException e) {
            throw new BundleException("ExecuTorch cannot load " + program + " (" + e.getMessage()
                    + "); check it is the bundle's " + Manifest.PROGRAM_FILE + " and that the app's "
                    + "executorch-android is at least the version the bundle was exported with (manifest "
                    + "provenance.versions.executorch)", e);
        }
        Set<String> names = new LinkedHashSet<String>();
        String method = null;
        try {
            names.addAll(Arrays.asList(module.getMethods()));
            for (String name : names) {
                method = name;
                module.loadMethod(name);
            }
        } catch (RuntimeException e) {
            module.close();
            throw new BundleException("ExecuTorch cannot load " + (method == null ? "the methods" : "method '" + method
                    + "'") + " of " + program + " (" + e.getMessage() + "); the app's ExecuTorch build may lack an "
                    + "operator or the XNNPACK backend the program needs", e);
        }
        return new ExecuTorchEngine(module, Collections.unmodifiableSet(names));
    }

    @Override
    public Set<String> methods() {
        return methods;
    }

    @Override
    public float[] run(String method, float[] input, long[] shape) {
        if (!methods.contains(method)) {
            throw new IllegalArgumentException("the program has no method '" + method + "'; it has " + methods);
        }
        state.readLock().lock();
        try {
            if (closed) {
                throw new IllegalStateException("this ExecuTorchEngine is closed");
            }
            EValue[] outputs;
            try {
                outputs = module.execute(method, EValue.from(Tensor.fromBlob(input, shape)));
            } catch (IllegalStateException e) {
                throw e;
            } catch (RuntimeException e) { // ExecutorchRuntimeException: wrong shape or dtype, mostly
                throw new IllegalArgumentException("ExecuTorch could not run '" + method + "' on input of shape "
                        + Arrays.toString(shape) + ": " + e.getMessage(), e);
            }
            if (outputs.length == 0 || !outputs[0].isTensor()) {
                throw new IllegalStateException("method '" + method + "' returned no tensor; the program is not a "
                        + "prp-export bundle program");
            }
            return outputs[0].toTensor().getDataAsFloatArray();
        } finally {
            state.readLock().unlock();
        }
    }

    @Override
    public void close() {
        state.writeLock().lock();
        try {
            if (!closed) {
                closed = true;
                module.close();
            }
        } finally {
            state.writeLock().unlock();
        }
    }
}
