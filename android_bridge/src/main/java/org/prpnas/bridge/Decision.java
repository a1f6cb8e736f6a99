package org.prpnas.bridge;

/** A policy's choice: the path to run and why. Immutable. */
public final class Decision {
    private final String path;
    private final String reason;

    /**
     * @param path the chosen path id
     * @param reason a human-readable reason
     */
    public Decision(String path, String reason) {
        this.path = path;
        this.reason = reason;
    }

    /** The chosen path id. */
    public String path() {
        return path;
    }

    /** Why it was chosen. */
    public String reason() {
        return reason;
    }

    @Override
    public String toString() {
        return path + " (" + reason + ")";
    }
}
