package org.prpnas.bridge;

/** A policy table that does not fit the bundle, or a path name the bundle lacks. */
public class PolicyException extends IllegalArgumentException {
    private static final long serialVersionUID = 1L;

    /** @param message what is wrong, with the value, and what is allowed */
    public PolicyException(String message) {
        super(message);
    }
}
