package org.prpnas.bridge;

/** A {@code BatteryManager} property this device does not provide. */
public class UnsupportedBatteryPropertyException extends IllegalStateException {
    private static final long serialVersionUID = 1L;

    private final BatteryProperty property;

    /**
     * @param property the property asked for
     * @param message what the device returned and what to use instead
     */
    public UnsupportedBatteryPropertyException(BatteryProperty property, String message) {
        super(message);
        this.property = property;
    }

    /** The property this device lacks. */
    public BatteryProperty property() {
        return property;
    }
}
