package org.prpnas.bridge;

/**
 * Which path to run now, given the battery and the clock. Implementations are immutable and make the
 * same choice as the Python policy of the same name for every {@link PolicyContext}; the conformance table
 * ({@code android_bridge/conformance/}) checks that.
 */
public interface Policy {
    /** The policy's name: {@code battery}, {@code schedule}, {@code energy-budget} or {@code fixed}. */
    String name();

    /**
     * @param ctx the battery reading, the clock and the current path
     * @return the path to run
     */
    Decision decide(PolicyContext ctx);
}
