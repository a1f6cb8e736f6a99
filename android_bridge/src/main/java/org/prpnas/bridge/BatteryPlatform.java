package org.prpnas.bridge;

/**
 * The few platform calls a {@link BatteryReader} needs. On Android, {@code AndroidBatteryReader}
 * implements it over {@code BatteryManager} and the sticky {@code ACTION_BATTERY_CHANGED} intent;
 * everything that interprets the values lives in {@link BatteryReader}, which is tested off-device.
 */
public interface BatteryPlatform {
    /**
     * {@code BatteryManager.getIntProperty(id)}: {@code Integer.MIN_VALUE} when the device does not
     * support the property (apps targeting API 28+; older targets get 0).
     */
    int intProperty(int id);

    /** {@code BatteryManager.getLongProperty(id)}: {@code Long.MIN_VALUE} when unsupported. */
    long longProperty(int id);

    /**
     * The sticky {@code ACTION_BATTERY_CHANGED} intent's {@code EXTRA_LEVEL} and {@code EXTRA_SCALE}
     * as {@code {level, scale}} (-1 for an extra that is absent), or {@code null} when there is no
     * sticky intent.
     */
    int[] stickyLevelAndScale();

    /**
     * The sticky {@code ACTION_BATTERY_CHANGED} intent's {@code EXTRA_VOLTAGE}, mV, or -1 where it is
     * absent (a platform that does not know it: {@link BatteryEnergyMeter} then reads no current).
     */
    default int stickyVoltageMv() {
        return -1;
    }
}
