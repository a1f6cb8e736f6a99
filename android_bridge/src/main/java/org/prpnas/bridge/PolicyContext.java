package org.prpnas.bridge;

/**
 * What a policy may look at (Python: {@code prp.runtime.policies.Context}; renamed here so that it
 * does not clash with {@code android.content.Context} in app code). Immutable.
 */
public final class PolicyContext {
    private final Double batteryPct;
    private final double elapsedH;
    private final String current;

    /**
     * @param batteryPct battery level in percent, or {@code null} where there is no reading
     * @param elapsedH hours since the model was loaded (or the simulated day began)
     * @param current the path in use now, or {@code null} before the first decision
     */
    public PolicyContext(Double batteryPct, double elapsedH, String current) {
        this.batteryPct = batteryPct;
        this.elapsedH = elapsedH;
        this.current = current;
    }

    /** Battery level in percent, or {@code null} where there is no reading. */
    public Double batteryPct() {
        return batteryPct;
    }

    /** Hours since the model was loaded. */
    public double elapsedH() {
        return elapsedH;
    }

    /** The path in use now, or {@code null}. */
    public String current() {
        return current;
    }
}
