package org.prpnas.bridge;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * The paper's adequate battery usage: switch every {@code switchEveryH} hours along {@code order}
 * (most to least accurate), then stay on the last (Python: {@code SchedulePolicy}).
 */
public final class SchedulePolicy implements Policy {
    private final List<String> order;
    private final double switchEveryH;

    /**
     * @param order the paths in the order they run
     * @param switchEveryH hours on each, {@code > 0}
     * @throws PolicyException for an empty order or a non-positive period
     */
    public SchedulePolicy(List<String> order, double switchEveryH) {
        if (order.isEmpty()) {
            throw new PolicyException("schedule policy needs at least one path");
        }
        if (!(switchEveryH > 0)) {
            throw new PolicyException("switch_every_h must be > 0, got " + switchEveryH);
        }
        this.order = Collections.unmodifiableList(new ArrayList<String>(order));
        this.switchEveryH = switchEveryH;
    }

    @Override
    public String name() {
        return "schedule";
    }

    /** The paths in the order they run. */
    public List<String> order() {
        return order;
    }

    /** Hours on each path. */
    public double switchEveryH() {
        return switchEveryH;
    }

    /**
     * Python's float floor division {@code a // b} (CPython {@code float_floor_div}), which is not
     * always {@code Math.floor(a / b)}: {@code 1.0 // 0.1} is 9, {@code 1.0 / 0.1} is 10.
     */
    static double floorDiv(double a, double b) {
        double mod = a % b; // Java's % on doubles is C's fmod
        double div = (a - mod) / b;
        if (mod != 0 && ((b < 0) != (mod < 0))) {
            div -= 1.0;
        }
        if (div == 0) {
            return Math.copySign(0.0, a / b);
        }
        double floor = Math.floor(div);
        return div - floor > 0.5 ? floor + 1.0 : floor;
    }

    @Override
    public Decision decide(PolicyContext ctx) {
        double slot = floorDiv(Math.max(ctx.elapsedH(), 0.0), switchEveryH);
        int k = (int) Math.min(slot, order.size() - 1);
        return new Decision(order.get(k), "schedule: hour " + Fmt.two(ctx.elapsedH()) + ", slot " + k + " of "
                + order.size());
    }
}
