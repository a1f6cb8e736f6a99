package org.prpnas.bridge;

/** A calibration file that does not fit the bundle or holds no usable figures; the message says which. */
public final class CalibrationException extends Exception {
    private static final long serialVersionUID = 1L;

    public CalibrationException(String message) {
        super(message);
    }
}
