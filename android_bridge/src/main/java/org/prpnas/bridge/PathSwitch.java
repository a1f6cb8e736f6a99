package org.prpnas.bridge;

/**
 * One entry of the runtime's switch log (Python: {@code Switch}; renamed here so that it does not
 * clash with {@code android.widget.Switch} in app code). Immutable.
 */
public final class PathSwitch {
    private final double atH;
    private final String fromPath;
    private final String toPath;
    private final String reason;
    private final Double batteryPct;

    PathSwitch(double atH, String fromPath, String toPath, String reason, Double batteryPct) {
        this.atH = atH;
        this.fromPath = fromPath;
        this.toPath = toPath;
        this.reason = reason;
        this.batteryPct = batteryPct;
    }

    /** When, in the runtime clock's hours. */
    public double atH() {
        return atH;
    }

    /** The path before, or {@code null} for the first decision. */
    public String fromPath() {
        return fromPath;
    }

    /** The path after. */
    public String toPath() {
        return toPath;
    }

    /** Why. */
    public String reason() {
        return reason;
    }

    /** The battery reading at the time, or {@code null}. */
    public Double batteryPct() {
        return batteryPct;
    }

    @Override
    public String toString() {
        return fromPath + " -> " + toPath + " at " + Fmt.two(atH) + " h: " + reason;
    }
}
