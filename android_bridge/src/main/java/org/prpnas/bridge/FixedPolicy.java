package org.prpnas.bridge;

/** Always the same path. */
public final class FixedPolicy implements Policy {
    private final String path;

    /** @param path the path to run always */
    public FixedPolicy(String path) {
        if (path == null) {
            throw new PolicyException("fixed policy needs a path");
        }
        this.path = path;
    }

    @Override
    public String name() {
        return "fixed";
    }

    @Override
    public Decision decide(PolicyContext ctx) {
        return new Decision(path, "fixed policy: always " + path);
    }
}
