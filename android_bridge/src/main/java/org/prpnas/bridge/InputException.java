package org.prpnas.bridge;

/** Input of the wrong shape, size or values; the message says what was expected. */
public class InputException extends IllegalArgumentException {
    private static final long serialVersionUID = 1L;

    /** @param message what was given and what was expected */
    public InputException(String message) {
        super(message);
    }
}
