package org.prpnas.bridge;

/** A clock that moves only when told to: for tests and simulated days. Thread-safe. */
public final class ManualClock implements Clock {
    private double nowH;

    /** @param startH the first reading, in hours */
    public ManualClock(double startH) {
        this.nowH = startH;
    }

    @Override
    public synchronized double nowH() {
        return nowH;
    }

    /** @param hours the new reading */
    public synchronized void set(double hours) {
        nowH = hours;
    }

    /** @param seconds how far to move on */
    public synchronized void advanceSeconds(double seconds) {
        nowH += seconds / 3600.0;
    }
}
