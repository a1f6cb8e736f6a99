package org.prpnas.bridge;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertThrows;

import org.junit.Test;

/**
 * Energy from Android's battery service, against a fake BatteryManager: the energy counter (nWh),
 * the current (µA, negative while discharging) with the sticky intent's voltage (mV), the
 * "unsupported" sentinels, and charging.
 */
public class BatteryEnergyMeterTest {
    /** Answers as BatteryManager and the sticky ACTION_BATTERY_CHANGED intent would. */
    static final class FakeBatteryManager implements BatteryPlatform {
        long energyCounterNwh = Long.MIN_VALUE; // unsupported until set
        int currentNowUa = Integer.MIN_VALUE;
        int voltageMv = -1;

        @Override
        public int intProperty(int id) {
            return id == BatteryProperty.CURRENT_NOW.id() ? currentNowUa : Integer.MIN_VALUE;
        }

        @Override
        public long longProperty(int id) {
            return id == BatteryProperty.ENERGY_COUNTER.id() ? energyCounterNwh : Long.MIN_VALUE;
        }

        @Override
        public int[] stickyLevelAndScale() {
            return new int[] {50, 100};
        }

        @Override
        public int stickyVoltageMv() {
            return voltageMv;
        }
    }

    private static final double SECOND_H = 1.0 / 3600.0;

    @Test
    public void theEnergyCounterFallsAsTheDeviceDraws() {
        FakeBatteryManager bm = new FakeBatteryManager();
        bm.energyCounterNwh = 10_000_000_000L; // 10 Wh left
        BatteryEnergyMeter meter = new BatteryEnergyMeter(bm, new ManualClock(0.0));
        assertEquals(0.0, meter.readJoules(), 0.0);
        assertEquals(BatteryEnergyMeter.Source.ENERGY_COUNTER, meter.source());
        bm.energyCounterNwh -= 1_000_000L; // 1 mWh = 3.6 J
        assertEquals(3.6, meter.readJoules(), 1e-9);
        bm.energyCounterNwh += 5_000_000L; // charging
        assertNull(meter.readJoules());
        bm.energyCounterNwh -= 500_000L;
        assertEquals(3.6 + 1.8, meter.readJoules(), 1e-9);
    }

    @Test
    public void currentTimesVoltageIsIntegratedWhileDischarging() {
        FakeBatteryManager bm = new FakeBatteryManager();
        bm.currentNowUa = -500_000; // 0.5 A out of the battery
        bm.voltageMv = 4000; // 2 W
        ManualClock clock = new ManualClock(0.0);
        BatteryEnergyMeter meter = new BatteryEnergyMeter(bm, clock);
        assertEquals(0.0, meter.readJoules(), 0.0);
        assertEquals(BatteryEnergyMeter.Source.CURRENT_X_VOLTAGE, meter.source());
        clock.set(2 * SECOND_H);
        assertEquals(4.0, meter.readJoules(), 1e-9);
        bm.currentNowUa = -1_000_000; // 4 W: the trapezoid averages 2 and 4 W over the second
        clock.set(3 * SECOND_H);
        assertEquals(7.0, meter.readJoules(), 1e-9);
        bm.currentNowUa = 300_000; // charging: no reading, and the gap is not made up for
        clock.set(10 * SECOND_H);
        assertNull(meter.readJoules());
        bm.currentNowUa = -500_000;
        clock.set(20 * SECOND_H);
        assertEquals(7.0, meter.readJoules(), 1e-9);
        clock.set(21 * SECOND_H);
        assertEquals(9.0, meter.readJoules(), 1e-9);
    }

    @Test
    public void noReadingWhereTheDeviceReportsNeither() {
        FakeBatteryManager bm = new FakeBatteryManager(); // both properties unsupported
        BatteryEnergyMeter meter = new BatteryEnergyMeter(bm, new ManualClock(0.0));
        assertNull(meter.readJoules());
        bm.currentNowUa = -500_000; // a current, but no voltage in the sticky intent
        assertNull(meter.readJoules());
        bm.energyCounterNwh = 0L; // devices without the counter often report 0
        bm.voltageMv = 3800;
        assertEquals(0.0, meter.readJoules(), 0.0);
        assertEquals(BatteryEnergyMeter.Source.CURRENT_X_VOLTAGE, meter.source());
        assertThrows(IllegalArgumentException.class, () -> new BatteryEnergyMeter(null, new ManualClock(0.0)));
    }
}
