package org.prpnas.bridge;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The most accurate path whose projected drain still lasts until {@code targetH} hours after the
 * start, re-planned at every decision from the battery reading now; if no path lasts, the cheapest
 * by energy (Python: {@code EnergyBudgetPolicy}).
 */
public final class EnergyBudgetPolicy implements Policy {
    private final Map<String, Double> energyMj;
    private final PowerModel power;
    private final double targetH;
    private final List<String> order;

    /**
     * @param energyMj energy per inference of each path in mJ, most accurate first (iteration order)
     * @param power the battery and workload
     * @param targetH the battery life to reach, in hours from the start
     */
    public EnergyBudgetPolicy(Map<String, Double> energyMj, PowerModel power, double targetH) {
        this(energyMj, power, targetH, new ArrayList<String>(energyMj.keySet()));
    }

    /**
     * @param energyMj energy per inference of each path in mJ
     * @param power the battery and workload
     * @param targetH the battery life to reach, in hours from the start
     * @param order the paths to consider, most accurate first
     */
    public EnergyBudgetPolicy(Map<String, Double> energyMj, PowerModel power, double targetH, List<String> order) {
        if (energyMj.isEmpty()) {
            throw new PolicyException("energy-budget policy needs the energy of every path");
        }
        for (String p : order) {
            if (energyMj.get(p) == null) {
                throw new PolicyException("energy-budget policy has no energy for path '" + p + "'");
            }
        }
        if (order.isEmpty()) {
            throw new PolicyException("energy-budget policy needs at least one path");
        }
        this.energyMj = Collections.unmodifiableMap(new LinkedHashMap<String, Double>(energyMj));
        this.power = power;
        this.targetH = targetH;
        this.order = Collections.unmodifiableList(new ArrayList<String>(order));
    }

    @Override
    public String name() {
        return "energy-budget";
    }

    /** The battery and workload model. */
    public PowerModel power() {
        return power;
    }

    /** Target battery life in hours from the start. */
    public double targetH() {
        return targetH;
    }

    /**
     * @param path a path id
     * @param batteryPct the battery level now
     * @return hours the battery lasts running {@code path} continuously from this level
     */
    public double hoursLeft(String path, double batteryPct) {
        double joules = power.capacityJ() * Math.max(batteryPct, 0.0) / 100.0;
        return joules / power.powerW(energyMj.get(path)) / 3600.0;
    }

    @Override
    public Decision decide(PolicyContext ctx) {
        if (ctx.batteryPct() == null) {
            return new Decision(order.get(0), "no battery reading: most accurate path");
        }
        double needed = Math.max(targetH - ctx.elapsedH(), 0.0);
        for (String path : order) {
            double hours = hoursLeft(path, ctx.batteryPct());
            if (hours >= needed) {
                return new Decision(path, "budget: " + path + " lasts " + Fmt.one(hours) + " h >= " + Fmt.one(needed)
                        + " h still needed");
            }
        }
        String cheapest = order.get(0); // the first of the cheapest, like Python's min(order, key=energy)
        for (String path : order) {
            if (energyMj.get(path) < energyMj.get(cheapest)) {
                cheapest = path;
            }
        }
        return new Decision(cheapest, "budget: no path lasts " + Fmt.one(needed) + " h; cheapest (" + cheapest + ")");
    }
}
