package org.prpnas.bridge;

import android.content.Intent;
import android.content.IntentFilter;
import android.os.BatteryManager;

/**
 * {@link BatteryPlatform} over Android's {@code BatteryManager} and the sticky
 * {@code ACTION_BATTERY_CHANGED} intent. It only makes the platform calls; {@link BatteryReader}
 * interprets them (and is unit-tested off-device). Needs no permission.
 *
 * <p>Compiled only by Gradle in an Android build (this machine has no {@code android.jar}).
 *
 * <pre>{@code
 * BatterySource battery = AndroidBatteryReader.reader(context);
 * }</pre>
 */
public final class AndroidBatteryReader implements BatteryPlatform {
    private final android.content.Context context;
    private final BatteryManager manager;

    /** @param context any context; its application context is kept */
    public AndroidBatteryReader(android.content.Context context) {
        this.context = context.getApplicationContext();
        this.manager = (BatteryManager) this.context.getSystemService(android.content.Context.BATTERY_SERVICE);
    }

    /** A {@link BatteryReader} over this device's battery, capacity first, then the sticky intent. */
    public static BatteryReader reader(android.content.Context context) {
        return new BatteryReader(new AndroidBatteryReader(context));
    }

    @Override
    public int intProperty(int id) {
        return manager == null ? Integer.MIN_VALUE : manager.getIntProperty(id);
    }

    @Override
    public long longProperty(int id) {
        return manager == null ? Long.MIN_VALUE : manager.getLongProperty(id);
    }

    @Override
    public int[] stickyLevelAndScale() {
        Intent sticky = context.registerReceiver(null, new IntentFilter(Intent.ACTION_BATTERY_CHANGED));
        if (sticky == null) {
            return null;
        }
        return new int[] {
            sticky.getIntExtra(BatteryManager.EXTRA_LEVEL, -1), sticky.getIntExtra(BatteryManager.EXTRA_SCALE, -1)
        };
    }

    @Override
    public int stickyVoltageMv() {
        Intent sticky = context.registerReceiver(null, new IntentFilter(Intent.ACTION_BATTERY_CHANGED));
        return sticky == null ? -1 : sticky.getIntExtra(BatteryManager.EXTRA_VOLTAGE, -1);
    }
}
