package org.prpnas.bridge;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * The most accurate path whose {@code min_battery_pct} the battery reaches, with hysteresis
 * (Python: {@code BatteryPolicy}).
 *
 * <p>Levels are (threshold, path), most accurate first, thresholds descending, the last at 0 %. Going
 * down happens as soon as the battery falls below a level's threshold; going back up to a more
 * accurate path only once the battery is {@code hysteresisPct} above that path's threshold, so a
 * reading that wobbles around a threshold does not flap between paths. Without a reading the most
 * accurate path runs. A reading below every threshold (negative; Python raises there) runs the last.
 */
public final class BatteryPolicy implements Policy {
    private final double[] thresholds;
    private final List<String> ids;
    private final double hysteresisPct;

    /**
     * @param thresholdsPct minimum battery level of each level, descending, the last at most 0
     * @param paths the path of each level, most accurate first
     * @param hysteresisPct margin above a threshold needed to move back up, {@code >= 0}
     * @throws PolicyException if the table breaks one of those rules
     */
    public BatteryPolicy(double[] thresholdsPct, List<String> paths, double hysteresisPct) {
        if (thresholdsPct.length == 0) {
            throw new PolicyException("battery policy needs at least one level");
        }
        if (paths.size() != thresholdsPct.length) {
            throw new PolicyException("battery policy has " + thresholdsPct.length + " thresholds for "
                    + paths.size() + " paths");
        }
        for (int i = 1; i < thresholdsPct.length; i++) {
            if (thresholdsPct[i] > thresholdsPct[i - 1]) {
                throw new PolicyException("battery thresholds must descend, got "
                        + java.util.Arrays.toString(thresholdsPct));
            }
        }
        if (thresholdsPct[thresholdsPct.length - 1] > 0) {
            throw new PolicyException("the last battery level must start at 0 %, got "
                    + Fmt.g(thresholdsPct[thresholdsPct.length - 1]));
        }
        if (!(hysteresisPct >= 0)) {
            throw new PolicyException("hysteresis must be >= 0, got " + hysteresisPct);
        }
        this.thresholds = thresholdsPct.clone();
        this.ids = Collections.unmodifiableList(new ArrayList<String>(paths));
        this.hysteresisPct = hysteresisPct;
    }

    @Override
    public String name() {
        return "battery";
    }

    /** The paths, most accurate first. */
    public List<String> paths() {
        return ids;
    }

    /** The hysteresis margin in percent. */
    public double hysteresisPct() {
        return hysteresisPct;
    }

    private int index(double pct) {
        for (int i = 0; i < thresholds.length; i++) {
            if (pct >= thresholds[i]) {
                return i;
            }
        }
        return thresholds.length - 1;
    }

    @Override
    public Decision decide(PolicyContext ctx) {
        if (ctx.batteryPct() == null) {
            return new Decision(ids.get(0), "no battery reading: most accurate path");
        }
        double pct = ctx.batteryPct();
        int target = index(pct);
        int cur = ctx.current() == null ? -1 : ids.indexOf(ctx.current());
        if (cur >= 0) {
            if (target < cur) { // would move up to a more accurate path: needs the margin
                target = Math.min(index(pct - hysteresisPct), cur);
            }
            if (target == cur) {
                return new Decision(ids.get(cur), "battery " + Fmt.one(pct) + " % >= " + Fmt.g(thresholds[cur])
                        + " %: stay on " + ids.get(cur));
            }
        }
        return new Decision(ids.get(target), "battery " + Fmt.one(pct) + " % >= " + Fmt.g(thresholds[target])
                + " %: " + ids.get(target));
    }
}
