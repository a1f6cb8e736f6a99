package org.prpnas.bridge;

/**
 * What the energy budget needs to project drain: the battery and the workload (Python:
 * {@code PowerModel}). Immutable.
 */
public final class PowerModel {
    /**
     * A Pixel-3-like phone under a continuous camera workload, the Python runtime's
     * {@code PIXEL3_LIKE_POWER}: 2915 mAh at 3.85 V, 1 W besides inference, 30 inferences a second.
     * Stated, not measured.
     */
    public static final PowerModel PIXEL3_LIKE = new PowerModel(2915, 3.85, 1.0, 30.0);

    private final double capacityMah;
    private final double voltageV;
    private final double baselineW;
    private final double inferencesPerS;

    /**
     * @param capacityMah battery capacity in mAh
     * @param voltageV nominal battery voltage in V
     * @param baselineW the phone's own draw besides inference, in W
     * @param inferencesPerS how many inferences the app runs per second
     */
    public PowerModel(double capacityMah, double voltageV, double baselineW, double inferencesPerS) {
        if (!(capacityMah > 0 && voltageV > 0 && baselineW >= 0 && inferencesPerS >= 0)) {
            throw new PolicyException("power model needs capacity_mah > 0, voltage_v > 0, baseline_w >= 0 and "
                    + "inferences_per_s >= 0, got " + capacityMah + ", " + voltageV + ", " + baselineW + ", "
                    + inferencesPerS);
        }
        this.capacityMah = capacityMah;
        this.voltageV = voltageV;
        this.baselineW = baselineW;
        this.inferencesPerS = inferencesPerS;
    }

    /** Battery capacity in joules (same operation order as the Python, for identical doubles). */
    public double capacityJ() {
        return capacityMah * 3.6 * voltageV;
    }

    /**
     * @param energyMj energy of one inference in mJ
     * @return the phone's total draw in W while running that path
     */
    public double powerW(double energyMj) {
        return baselineW + inferencesPerS * energyMj * 1e-3;
    }

    /** Battery capacity in mAh. */
    public double capacityMah() {
        return capacityMah;
    }

    /** Nominal voltage in V. */
    public double voltageV() {
        return voltageV;
    }

    /** Draw besides inference in W. */
    public double baselineW() {
        return baselineW;
    }

    /** Inferences per second. */
    public double inferencesPerS() {
        return inferencesPerS;
    }
}
