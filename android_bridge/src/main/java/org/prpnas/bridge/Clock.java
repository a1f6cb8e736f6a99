package org.prpnas.bridge;

/** Hours since a start, the runtime's notion of time (so tests and simulations can drive it). */
public interface Clock {
    /** Hours since this clock's start. */
    double nowH();

    /** A monotonic clock ({@code System.nanoTime}) starting now. */
    static Clock system() {
        final long start = System.nanoTime();
        return new Clock() {
            @Override
            public double nowH() {
                return (System.nanoTime() - start) / 3.6e12;
            }
        };
    }
}
