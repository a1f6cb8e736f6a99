package org.prpnas.bridge;

/** A level the host app pushes (from a broadcast receiver, say); thread-safe. */
public final class PushedBattery implements BatterySource {
    private Double pct;

    /** No reading until the first {@link #push}. */
    public PushedBattery() {
        this(null);
    }

    /** @param pct the first level in percent, or {@code null} for none */
    public PushedBattery(Double pct) {
        push(pct);
    }

    /**
     * @param pct the level in percent, 0-100, or {@code null} for no reading
     * @throws IllegalArgumentException for a level outside 0-100
     */
    public synchronized void push(Double pct) {
        if (pct != null && !(pct >= 0.0 && pct <= 100.0)) {
            throw new IllegalArgumentException("battery level must be within 0-100 %, got " + pct);
        }
        this.pct = pct;
    }

    @Override
    public synchronized Double read() {
        return pct;
    }
}
