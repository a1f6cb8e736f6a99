package org.prpnas.bridge;

/** Where the runtime reads the battery level (Python: {@code BatterySource}). */
public interface BatterySource {
    /**
     * @return battery level in percent (0-100), or {@code null} where there is no reading; the
     *     policies then run the most accurate path
     */
    Double read();
}
