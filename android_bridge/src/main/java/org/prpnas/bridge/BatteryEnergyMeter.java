package org.prpnas.bridge;

/**
 * The energy the device draws from its battery, as a running total in joules, from Android's
 * {@code BatteryManager} (Python: {@code prp.runtime.energy}, where Linux's power_supply and RAPL are
 * read the same way). Readings of it taken around stretches of inference give what a path costs.
 *
 * <p>Two sources, tried in this order at every reading:
 * <ul>
 *   <li>{@code BATTERY_PROPERTY_ENERGY_COUNTER}: the battery's remaining energy, nWh; energy drawn is
 *       its fall (1 nWh = 3.6 mJ). Many devices do not report it (the unsupported sentinel, or 0);
 *   <li>{@code BATTERY_PROPERTY_CURRENT_NOW} (µA, negative while the battery discharges) times the
 *       sticky {@code ACTION_BATTERY_CHANGED} intent's {@code EXTRA_VOLTAGE} (mV), integrated over the
 *       clock (trapezoids between readings).
 * </ul>
 * While the battery charges (the counter rises, the current is positive) there is no reading: a
 * charger's power is not what the device draws. After a gap the total goes on from where it was (no
 * energy is made up for the gap). Some devices report the current with the opposite sign or in mA;
 * such a device gives no reading or readings 1000x off, which a calibration on it shows. Thread-safe.
 */
public final class BatteryEnergyMeter {
    /** Where a reading came from. */
    public enum Source {
        /** {@code BATTERY_PROPERTY_ENERGY_COUNTER} differences. */
        ENERGY_COUNTER,
        /** {@code BATTERY_PROPERTY_CURRENT_NOW} x {@code EXTRA_VOLTAGE}, integrated. */
        CURRENT_X_VOLTAGE
    }

    private static final double JOULES_PER_NWH = 3.6e-6;

    private final BatteryPlatform platform;
    private final Clock clock;
    private double totalJ;
    private Source source;
    private long lastCounterNwh = Long.MIN_VALUE;
    private double lastH = Double.NaN;
    private double lastW = Double.NaN;

    /**
     * @param platform the battery service's calls (on Android: {@code new AndroidBatteryReader(context)})
     * @param clock the time the current is integrated over
     */
    public BatteryEnergyMeter(BatteryPlatform platform, Clock clock) {
        if (platform == null || clock == null) {
            throw new IllegalArgumentException("BatteryEnergyMeter needs a platform and a clock");
        }
        this.platform = platform;
        this.clock = clock;
    }

    /** A meter on the system clock. */
    public BatteryEnergyMeter(BatteryPlatform platform) {
        this(platform, Clock.system());
    }

    /** The source of the last reading, or {@code null} before one. */
    public synchronized Source source() {
        return source;
    }

    /**
     * @return joules drawn since this meter's first reading (only differences mean anything), or
     *     {@code null} where the battery gives no reading now (charging, or neither source supported)
     */
    public synchronized Double readJoules() {
        long counter = platform.longProperty(BatteryProperty.ENERGY_COUNTER.id());
        if (counter != Long.MIN_VALUE && counter > 0) {
            return fromCounter(counter);
        }
        lastCounterNwh = Long.MIN_VALUE;
        return fromCurrent();
    }

    private Double fromCounter(long counterNwh) {
        long last = lastCounterNwh;
        lastCounterNwh = counterNwh;
        lastH = Double.NaN;
        source = Source.ENERGY_COUNTER;
        if (last == Long.MIN_VALUE) {
            return totalJ;
        }
        if (counterNwh > last) { // charging
            return null;
        }
        totalJ += (last - counterNwh) * JOULES_PER_NWH;
        return totalJ;
    }

    private Double fromCurrent() {
        int microA = platform.intProperty(BatteryProperty.CURRENT_NOW.id());
        int milliV = platform.stickyVoltageMv();
        double now = clock.nowH();
        if (microA == Integer.MIN_VALUE || microA >= 0 || milliV <= 0) { // unsupported, charging, no voltage
            lastH = Double.NaN;
            return null;
        }
        double watts = -microA * 1e-6 * milliV * 1e-3;
        if (!Double.isNaN(lastH)) {
            totalJ += 0.5 * (watts + lastW) * Math.max(now - lastH, 0.0) * 3600.0;
        }
        lastH = now;
        lastW = watts;
        source = Source.CURRENT_X_VOLTAGE;
        return totalJ;
    }
}
