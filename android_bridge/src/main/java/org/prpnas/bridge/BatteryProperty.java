package org.prpnas.bridge;

/**
 * The {@code android.os.BatteryManager} properties, with their platform ids and units (the ids are
 * Android's {@code BATTERY_PROPERTY_*} constants, stable since API 21).
 */
public enum BatteryProperty {
    /** Remaining charge, µAh ({@code BATTERY_PROPERTY_CHARGE_COUNTER}). */
    CHARGE_COUNTER(1, "µAh", false),
    /** Instantaneous current, µA, positive while charging ({@code BATTERY_PROPERTY_CURRENT_NOW}). */
    CURRENT_NOW(2, "µA", false),
    /** Average current, µA ({@code BATTERY_PROPERTY_CURRENT_AVERAGE}). */
    CURRENT_AVERAGE(3, "µA", false),
    /** Remaining capacity, percent ({@code BATTERY_PROPERTY_CAPACITY}). */
    CAPACITY(4, "%", false),
    /** Remaining energy, nWh ({@code BATTERY_PROPERTY_ENERGY_COUNTER}, read as a long). */
    ENERGY_COUNTER(5, "nWh", true);

    private final int id;
    private final String unit;
    private final boolean longValued;

    BatteryProperty(int id, String unit, boolean longValued) {
        this.id = id;
        this.unit = unit;
        this.longValued = longValued;
    }

    /** The platform id to pass to {@code BatteryManager.getIntProperty/getLongProperty}. */
    public int id() {
        return id;
    }

    /** The unit of the value. */
    public String unit() {
        return unit;
    }

    /** Whether Android reads it with {@code getLongProperty} (else {@code getIntProperty}). */
    public boolean longValued() {
        return longValued;
    }
}
