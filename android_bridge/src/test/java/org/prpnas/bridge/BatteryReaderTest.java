package org.prpnas.bridge;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertThrows;
import static org.junit.Assert.assertTrue;

import java.util.HashMap;
import java.util.Map;
import org.junit.Test;

/**
 * The Android battery reading's logic, against a platform that answers like BatteryManager does
 * (values, or the Integer.MIN_VALUE / Long.MIN_VALUE "unsupported" sentinels) and like the sticky
 * ACTION_BATTERY_CHANGED intent (level and scale, -1 when absent, or no intent).
 */
public class BatteryReaderTest {
    /** Answers as a device with the given properties and sticky intent would. */
    static final class Device implements BatteryPlatform {
        final Map<Integer, Long> properties = new HashMap<Integer, Long>();
        int[] sticky;

        Device with(BatteryProperty p, long value) {
            properties.put(p.id(), value);
            return this;
        }

        Device sticky(int level, int scale) {
            sticky = new int[] {level, scale};
            return this;
        }

        @Override
        public int intProperty(int id) {
            Long v = properties.get(id);
            return v == null ? Integer.MIN_VALUE : (int) (long) v;
        }

        @Override
        public long longProperty(int id) {
            Long v = properties.get(id);
            return v == null ? Long.MIN_VALUE : v;
        }

        @Override
        public int[] stickyLevelAndScale() {
            return sticky;
        }
    }

    @Test
    public void capacityFirstThenStickyThenNoReading() {
        Device d = new Device().with(BatteryProperty.CAPACITY, 57).sticky(30, 100);
        assertEquals(57.0, new BatteryReader(d).read(), 0.0);
        d.properties.clear(); // CAPACITY unsupported: Integer.MIN_VALUE
        assertEquals(30.0, new BatteryReader(d).read(), 0.0);
        d.sticky(37, 50);
        assertEquals(74.0, new BatteryReader(d).read(), 0.0);
        d.sticky(-1, 100);
        assertNull(new BatteryReader(d).read());
        d.sticky = null; // no sticky intent at all
        assertNull(new BatteryReader(d).read());
        d.with(BatteryProperty.CAPACITY, 150).sticky(20, 100); // nonsense capacity: fall back
        assertEquals(20.0, new BatteryReader(d).read(), 0.0);
    }

    @Test
    public void unsupportedPropertiesGiveClearErrors() {
        Device d = new Device().sticky(50, 100).with(BatteryProperty.CHARGE_COUNTER, 2100000);
        BatteryReader reader = new BatteryReader(d, BatteryReader.Mode.CAPACITY_ONLY);
        UnsupportedBatteryPropertyException e = assertThrows(UnsupportedBatteryPropertyException.class, reader::read);
        assertEquals(BatteryProperty.CAPACITY, e.property());
        assertTrue(e.getMessage(),
                e.getMessage().contains("does not support BatteryManager property CAPACITY (id 4, %)"));
        assertTrue(e.getMessage(), e.getMessage().contains("getIntProperty returned Integer.MIN_VALUE"));
        assertTrue(e.getMessage(), e.getMessage().contains("CAPACITY_THEN_STICKY"));

        e = assertThrows(UnsupportedBatteryPropertyException.class,
                () -> reader.property(BatteryProperty.ENERGY_COUNTER));
        assertTrue(e.getMessage(), e.getMessage().contains("ENERGY_COUNTER (id 5, nWh)"));
        assertTrue(e.getMessage(), e.getMessage().contains("getLongProperty returned Long.MIN_VALUE"));
        assertEquals(2100000L, reader.property(BatteryProperty.CHARGE_COUNTER));

        d.with(BatteryProperty.ENERGY_COUNTER, 9000000000L);
        assertEquals(9000000000L, reader.property(BatteryProperty.ENERGY_COUNTER));
        d.with(BatteryProperty.CAPACITY, 101);
        assertTrue(assertThrows(IllegalStateException.class, reader::read).getMessage().contains("outside 0-100"));
    }

    @Test
    public void stickyOnlyIgnoresTheProperty() {
        Device d = new Device().with(BatteryProperty.CAPACITY, 90).sticky(3, 4);
        assertEquals(75.0, new BatteryReader(d, BatteryReader.Mode.STICKY_ONLY).read(), 0.0);
        assertNull(BatteryReader.percentFromSticky(5, 0));
        assertEquals(100.0, BatteryReader.percentFromSticky(110, 100), 0.0);
        assertNull(BatteryReader.percentFromCapacity(Integer.MIN_VALUE));
        assertNull(BatteryReader.percentFromCapacity(Long.MIN_VALUE));
    }

    @Test
    public void theReaderFeedsTheRuntime() throws Exception {
        Bundles.BatteryTable t = Bundles.battery().atLeast(2, "theReaderFeedsTheRuntime");
        Device d = new Device().with(BatteryProperty.CAPACITY, 95);
        ManualClock clock = new ManualClock(0);
        SupernetRuntime rt = SupernetRuntime.builder(Bundles.shippedManifest(),
                RecordingEngine.withPaths(Bundles.ids().size())).battery(new BatteryReader(d)).clock(clock).build();
        float[] x = new float[3 * 32 * 32];
        long[] shape = {1, 3, 32, 32};
        String full = t.pick(95.0, null);
        assertEquals(full, rt.predict(x, shape).path());
        d.with(BatteryProperty.CAPACITY, 0); // empty: the cheapest level, whatever the thresholds
        assertEquals(t.paths.get(t.size() - 1), rt.predict(x, shape).path());
        d.properties.clear(); // the device stops reporting anything: no reading, most accurate
        assertEquals(t.paths.get(0), rt.predict(x, shape).path());
        assertEquals(null, rt.switches().get(2).batteryPct());
    }

    @Test
    public void pushedBatteryChecksItsRange() {
        PushedBattery b = new PushedBattery(50.0);
        assertEquals(50.0, b.read(), 0.0);
        b.push(null);
        assertNull(b.read());
        assertTrue(assertThrows(IllegalArgumentException.class, () -> b.push(101.0)).getMessage()
                .contains("within 0-100 %"));
    }
}
