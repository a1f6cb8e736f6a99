package org.prpnas.bridge;

import java.io.File;
import java.io.PrintStream;
import java.util.Arrays;
import java.util.HashSet;
import java.util.Set;

/**
 * Command line: validates a bundle as the app will load it, before it is shipped.
 *
 * <pre>
 * java -cp prp-bridge.jar:com.android.json.jar org.prpnas.bridge.BundleCheck BUNDLE_DIR
 *      [--methods path_0,path_1,...] [--battery PCT] [--hours H]
 * </pre>
 *
 * <p>Checks the manifest and every file's sha256, builds every policy the manifest has tables for,
 * and, given the program's method names ({@code --methods}), that the program has every path's
 * method. Prints each policy's choice at {@code --battery} / {@code --hours}. Exit status 0 when the
 * bundle is good, 2 with one {@code error:} line when not.
 */
public final class BundleCheck {
    private BundleCheck() {}

    /** @param args the bundle folder and options, as above */
    public static void main(String[] args) {
        System.exit(run(args, System.out, System.err));
    }

    static int run(String[] args, PrintStream out, PrintStream err) {
        if (args.length < 1 || args[0].startsWith("-")) {
            err.println("usage: BundleCheck BUNDLE_DIR [--methods a,b,...] [--battery PCT] [--hours H] "
                    + "[--calibration FILE]");
            return 64;
        }
        Set<String> methods = null;
        Double battery = null;
        double hours = 0.0;
        String calibration = null;
        try {
            for (int i = 1; i < args.length; i += 2) {
                if (i + 1 >= args.length) {
                    throw new IllegalArgumentException("option " + args[i] + " needs a value");
                }
                if (args[i].equals("--methods")) {
                    methods = new HashSet<String>(Arrays.asList(args[i + 1].split(",")));
                } else if (args[i].equals("--battery")) {
                    battery = Double.valueOf(args[i + 1]);
                } else if (args[i].equals("--hours")) {
                    hours = Double.parseDouble(args[i + 1]);
                } else if (args[i].equals("--calibration")) {
                    calibration = args[i + 1];
                } else {
                    throw new IllegalArgumentException("unknown option " + args[i]);
                }
            }
            Manifest manifest = Manifest.load(new File(args[0]));
            out.println("manifest: " + manifest.paths().size() + " paths, " + manifest.files().size()
                    + " files, sha256 verified");
            Calibration measured = null;
            if (calibration != null) {
                try {
                    measured = Calibration.load(new File(calibration), manifest);
                    out.println("costs: measured (" + measured.backend() + ", energy: " + measured.energySource() + ")");
                } catch (CalibrationException e) {
                    out.println("costs: " + e.getMessage() + "; using the manifest's costs");
                }
            }
            if (methods != null) {
                SupernetRuntime.checkMethods(manifest, methods);
                out.println("program: every path's method is present");
            }
            for (String name : Policies.NAMES) {
                boolean tabled = name.equals("fixed") || manifest.policyTables().has(name);
                if (name.equals("energy-budget")) {
                    tabled = true;
                    for (PathInfo p : manifest.paths()) {
                        tabled &= p.energyMj() != null;
                    }
                }
                if (!tabled) {
                    continue;
                }
                Policy policy = measured == null ? Policies.fromManifest(manifest, name)
                        : MeasuredCosts.policy(manifest, measured, name);
                Decision d = policy.decide(new PolicyContext(battery, hours, null));
                out.println("policy " + name + ": " + d.path() + " (" + d.reason() + ")");
            }
            return 0;
        } catch (BundleException e) {
            err.println("error: " + e.getMessage());
            return 2;
        } catch (IllegalArgumentException e) { // PolicyException, bad option values
            err.println("error: " + e.getMessage());
            return 2;
        }
    }
}
