package org.prpnas.bridge;

/**
 * The battery level from Android's battery service, as a {@link BatterySource} for the runtime.
 *
 * <p>All interpretation of platform values is here, in plain Java: {@code BatteryManager}'s
 * "unsupported" sentinels ({@code Integer.MIN_VALUE} from {@code getIntProperty},
 * {@code Long.MIN_VALUE} from {@code getLongProperty}), out-of-range capacities, and the sticky
 * {@code ACTION_BATTERY_CHANGED} intent's level and scale. The Android adapter only makes the calls.
 * Thread-safe if the platform is.
 */
public final class BatteryReader implements BatterySource {
    /** Where {@link #read()} takes the level from. */
    public enum Mode {
        /**
         * {@code BATTERY_PROPERTY_CAPACITY}; where the device does not provide it, the sticky intent's
         * level / scale; where neither exists, no reading (the most accurate path runs).
         */
        CAPACITY_THEN_STICKY,
        /** {@code BATTERY_PROPERTY_CAPACITY} only; a device without it makes {@link #read()} throw. */
        CAPACITY_ONLY,
        /** The sticky intent's level / scale only; no reading where there is no sticky intent. */
        STICKY_ONLY
    }

    private final BatteryPlatform platform;
    private final Mode mode;

    /** A reader in {@link Mode#CAPACITY_THEN_STICKY} mode. */
    public BatteryReader(BatteryPlatform platform) {
        this(platform, Mode.CAPACITY_THEN_STICKY);
    }

    /**
     * @param platform the platform calls (on Android: {@code new AndroidBatteryReader(context)})
     * @param mode where the level comes from
     */
    public BatteryReader(BatteryPlatform platform, Mode mode) {
        if (platform == null || mode == null) {
            throw new IllegalArgumentException("BatteryReader needs a platform and a mode");
        }
        this.platform = platform;
        this.mode = mode;
    }

    /** The mode this reader uses. */
    public Mode mode() {
        return mode;
    }

    /**
     * @return the battery level in percent, or {@code null} for no reading (see {@link Mode})
     * @throws UnsupportedBatteryPropertyException in {@link Mode#CAPACITY_ONLY} on a device without
     *     the capacity property
     */
    @Override
    public Double read() {
        if (mode == Mode.STICKY_ONLY) {
            return sticky();
        }
        if (mode == Mode.CAPACITY_ONLY) {
            long value = property(BatteryProperty.CAPACITY);
            Double pct = percentFromCapacity(value);
            if (pct == null) {
                throw new IllegalStateException("BatteryManager reported a capacity of " + value
                        + " %, outside 0-100; use BatteryReader.Mode.CAPACITY_THEN_STICKY to fall back to the "
                        + "ACTION_BATTERY_CHANGED level");
            }
            return pct;
        }
        Double pct = percentFromCapacity(platform.intProperty(BatteryProperty.CAPACITY.id()));
        return pct != null ? pct : sticky();
    }

    private Double sticky() {
        int[] levelScale = platform.stickyLevelAndScale();
        return levelScale == null ? null : percentFromSticky(levelScale[0], levelScale[1]);
    }

    /**
     * One {@code BatteryManager} property, checked.
     *
     * @param property the property to read
     * @return its value, in {@link BatteryProperty#unit()}
     * @throws UnsupportedBatteryPropertyException if the device returned the "unsupported" sentinel,
     *     with a message naming the property and what to use instead
     */
    public long property(BatteryProperty property) {
        if (property.longValued()) {
            long value = platform.longProperty(property.id());
            if (value == Long.MIN_VALUE) {
                throw unsupported(property, "getLongProperty returned Long.MIN_VALUE");
            }
            return value;
        }
        int value = platform.intProperty(property.id());
        if (value == Integer.MIN_VALUE) {
            throw unsupported(property, "getIntProperty returned Integer.MIN_VALUE");
        }
        return value;
    }

    private static UnsupportedBatteryPropertyException unsupported(BatteryProperty p, String what) {
        String instead = p == BatteryProperty.CAPACITY
                ? "read the level with BatteryReader.Mode.CAPACITY_THEN_STICKY or STICKY_ONLY (the sticky "
                        + "ACTION_BATTERY_CHANGED intent's level and scale)"
                : "use BatteryProperty.CAPACITY for the level, or CHARGE_COUNTER where a charge is needed";
        return new UnsupportedBatteryPropertyException(p, "this device does not support BatteryManager property "
                + p + " (id " + p.id() + ", " + p.unit() + "): " + what + "; " + instead);
    }

    /**
     * @param value a {@code BATTERY_PROPERTY_CAPACITY} value
     * @return it as percent, or {@code null} for the unsupported sentinel or a value outside 0-100
     */
    public static Double percentFromCapacity(long value) {
        return value >= 0 && value <= 100 ? Double.valueOf(value) : null;
    }

    /**
     * @param level the intent's {@code EXTRA_LEVEL} (-1 when absent)
     * @param scale the intent's {@code EXTRA_SCALE} (-1 when absent)
     * @return {@code 100 * level / scale} clamped to 0-100, or {@code null} when either is missing or
     *     the scale is not positive
     */
    public static Double percentFromSticky(int level, int scale) {
        if (level < 0 || scale <= 0) {
            return null;
        }
        return Math.min(100.0, 100.0 * level / scale);
    }
}
