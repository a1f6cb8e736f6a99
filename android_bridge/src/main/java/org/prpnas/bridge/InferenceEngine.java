package org.prpnas.bridge;

import java.io.Closeable;
import java.util.Set;

/**
 * Runs the methods (one per path: {@code path_0}, {@code path_1}, ...) of one loaded bundle program.
 *
 * <p>Implementations load every method once, up front, so that switching paths never reloads
 * anything. {@link #run} may be called from several threads at once; an implementation that cannot
 * run two calls of the same method concurrently serialises them itself.
 */
public interface InferenceEngine extends Closeable {
    /** The method names the loaded program offers. */
    Set<String> methods();

    /**
     * Runs {@code method} on one float32 input tensor.
     *
     * @param method a name from {@link #methods()}
     * @param input the tensor's values, row-major (NCHW, already normalised as the manifest says)
     * @param shape the tensor's shape, e.g. {@code {1, 3, 32, 32}}
     * @return the first output (class logits), row-major, {@code batch x classes} values
     * @throws IllegalArgumentException for an unknown method or a shape the program does not take
     * @throws IllegalStateException after {@link #close()}
     */
    float[] run(String method, float[] input, long[] shape);

    /** Frees the program; later calls to {@link #run} throw {@link IllegalStateException}. */
    @Override
    void close();
}
