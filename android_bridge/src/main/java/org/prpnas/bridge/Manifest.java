package org.prpnas.bridge;

import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.Charset;
import java.nio.charset.CodingErrorAction;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.json.JSONArray;
import org.json.JSONException;
import org.json.JSONObject;
import org.json.JSONTokener;

/**
 * A bundle's validated {@code manifest.json}: the same checks and messages as
 * {@code prp.runtime.bundle.load_manifest}, including every listed file's sha256.
 *
 * <p>The same file rules as the Python runtime (docs/security.md): every listed name is a plain
 * file name ({@link ManifestSchema#plainNameProblem}); after resolving symlinks (canonical path) it
 * must stay inside the bundle folder; only regular files are read, never a FIFO or a device that
 * could block the loader; and an engine opens only files the manifest lists ({@link #file}), so
 * with {@link #verifyFiles()} (the default of {@link #load(File)}) everything it reads was hashed.
 * Java cannot open a file without blocking on a FIFO, so a file swapped for one between the check
 * and the read is not caught; the bundle folder should be writable only by whoever installs it.
 *
 * <p>Immutable; safe to share between threads.
 */
public final class Manifest {
    /** The manifest's file name inside a bundle folder. */
    public static final String FILE_NAME = "manifest.json";
    /** The ExecuTorch program's file name inside a bundle folder. */
    public static final String PROGRAM_FILE = "supernet.pte";
    /** The weights file the bundle's ONNX graphs read; listed (so checksummed) like the program. */
    public static final String WEIGHTS_FILE = "weights.bin";
    /** A real manifest is about 40 KB; a file this large is not one. */
    static final int MAX_MANIFEST_BYTES = 64 << 20;

    private final File directory;
    private final String json;
    private final List<PathInfo> paths;
    private final List<String> classes;
    private final Map<String, String> files;
    private final InputSpec input;
    private final Set<List<String>> passedPairs;

    private Manifest(File directory, JSONObject data, String where) throws BundleException {
        this.directory = directory;
        this.json = data.toString();
        List<PathInfo> ps = new ArrayList<PathInfo>();
        JSONArray array = data.optJSONArray("paths");
        for (int i = 0; i < array.length(); i++) {
            ps.add(new PathInfo(array.optJSONObject(i)));
        }
        this.paths = Collections.unmodifiableList(ps);
        List<String> names = new ArrayList<String>();
        JSONArray cls = data.optJSONArray("classes");
        for (int i = 0; i < cls.length(); i++) {
            names.add(String.valueOf(cls.opt(i)));
        }
        this.classes = Collections.unmodifiableList(names);
        Map<String, String> fs = new LinkedHashMap<String, String>();
        JSONObject fileTable = data.optJSONObject("files");
        Iterator<String> keys = fileTable.keys();
        while (keys.hasNext()) {
            String name = keys.next();
            fs.put(name, fileTable.optString(name));
        }
        this.files = Collections.unmodifiableMap(fs);
        this.input = InputSpec.fromJson(data.optJSONObject("input"), where);
        this.passedPairs = Ladder.passedPairs(data);
    }

    /** Same as {@link #load(File, boolean) load(directory, true)}. */
    public static Manifest load(File directory) throws BundleException {
        return load(directory, true);
    }

    /**
     * Reads and validates {@code directory/manifest.json}.
     *
     * @param directory the bundle folder (on Android a real folder, e.g. under
     *     {@code Context.getFilesDir()}: files inside an APK's assets are not files)
     * @param verifyFiles also check that every file in the manifest's {@code files} table exists and
     *     has the recorded sha256
     * @throws BundleException naming the file or field that is wrong and what to do
     */
    public static Manifest load(File directory, boolean verifyFiles) throws BundleException {
        File path = new File(directory, FILE_NAME);
        if (!directory.isDirectory()) {
            throw new BundleException("bundle " + directory + " does not exist or is not a folder; export one with "
                    + "prp-export and copy the whole folder to the device");
        }
        if (!path.exists()) {
            throw new BundleException(path + " is missing: " + directory
                    + " is not a bundle (export one with prp-export)");
        }
        File real = regularFile(directory, FILE_NAME);
        String text;
        try {
            text = readUtf8(real, path);
        } catch (CharacterCodingException e) {
            throw new BundleException(path + " is damaged (it is not UTF-8 text); export the bundle again", e);
        } catch (IOException e) {
            throw new BundleException("cannot read " + path + " (" + e.getMessage()
                    + "); check that the app may read it", e);
        }
        Manifest manifest = parse(text, directory, path.toString());
        if (verifyFiles) {
            manifest.verifyFiles();
        }
        return manifest;
    }

    /**
     * Parses and validates manifest text (no file checks).
     *
     * @param text the JSON text
     * @param directory the bundle folder its files live in (may be {@code null} when there is none)
     * @param where how messages name the source, e.g. its path
     * @throws BundleException if the text is not JSON or not a valid manifest
     */
    public static Manifest parse(String text, File directory, String where) throws BundleException {
        Object data;
        try {
            JSONTokener tokener = new JSONTokener(text);
            data = tokener.nextValue();
            char rest = tokener.nextClean();
            if (rest != 0) {
                throw new BundleException(where + " is damaged (more text after the JSON value, starting '"
                        + rest + "'); export the bundle again");
            }
        } catch (JSONException e) {
            throw new BundleException(where + " is damaged (" + shortSyntaxError(e.getMessage())
                    + "); export the bundle again", e);
        }
        List<String> errors = ManifestSchema.validate(data);
        if (!errors.isEmpty()) {
            throw new BundleException(where + " is not a valid manifest: " + join(errors, "; "));
        }
        return new Manifest(directory, (JSONObject) data, where);
    }

    /** org.json appends the whole input to a syntax error ("... at character 12 of {...}"): cut it. */
    static String shortSyntaxError(String message) {
        if (message == null) {
            return "not JSON";
        }
        int at = message.indexOf(" of ", Math.max(message.indexOf(" at character "), 0));
        String head = at > 0 && message.contains(" at character ") ? message.substring(0, at) : message;
        return head.length() > 200 ? head.substring(0, 200) + "..." : head;
    }

    /** {@code file} as UTF-8 text, at most {@link #MAX_MANIFEST_BYTES}; {@code where} names it in errors. */
    private static String readUtf8(File file, File where) throws IOException, BundleException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        byte[] buffer = new byte[1 << 14];
        InputStream in = new FileInputStream(file);
        try {
            for (int n = in.read(buffer); n >= 0; n = in.read(buffer)) {
                bytes.write(buffer, 0, n);
                if (bytes.size() > MAX_MANIFEST_BYTES) {
                    throw new BundleException(where + " is larger than " + (MAX_MANIFEST_BYTES >> 20)
                            + " MB: not a manifest");
                }
            }
        } finally {
            in.close();
        }
        return Charset.forName("UTF-8").newDecoder()
                .onMalformedInput(CodingErrorAction.REPORT)
                .onUnmappableCharacter(CodingErrorAction.REPORT)
                .decode(ByteBuffer.wrap(bytes.toByteArray()))
                .toString();
    }

    static String join(List<String> parts, String separator) {
        StringBuilder sb = new StringBuilder();
        for (String p : parts) {
            if (sb.length() > 0) {
                sb.append(separator);
            }
            sb.append(p);
        }
        return sb.toString();
    }

    /**
     * Checks every file in the manifest's {@code files} table: a regular file inside the bundle
     * folder ({@link #file}) with the recorded sha256.
     *
     * @throws BundleException naming the first missing, misplaced or altered file (never a hash)
     */
    public void verifyFiles() throws BundleException {
        for (Map.Entry<String, String> e : files.entrySet()) {
            File f = file(e.getKey());
            String actual;
            try {
                actual = Checksums.sha256(f);
            } catch (IOException io) {
                throw new BundleException("cannot read bundle file " + new File(directory, e.getKey()) + " ("
                        + io.getMessage() + ")", io);
            }
            // Neither digest goes into the message: it names the file, which is what to act on.
            if (!actual.equals(e.getValue())) {
                throw new BundleException("bundle file " + new File(directory, e.getKey()) + " is corrupt or "
                        + "truncated: its sha256 does not match the manifest; copy or export the bundle again");
            }
        }
    }

    /**
     * The bundle file {@code name} for an engine to open (Python: {@code Manifest.file}): it must be
     * listed in {@code files} (so {@link #verifyFiles()} checked its sha256), be a plain name, stay
     * inside the bundle folder after resolving symlinks, and be a regular file.
     *
     * @param name a file name from the manifest, e.g. {@link #PROGRAM_FILE}
     * @return the file's canonical path (symlinks resolved)
     * @throws BundleException naming the file and what is wrong with it
     */
    public File file(String name) throws BundleException {
        if (directory == null) {
            throw new BundleException("this manifest was parsed without a bundle folder, so it has no files; load it "
                    + "with Manifest.load(folder)");
        }
        if (!files.containsKey(name)) {
            throw new BundleException(directory + " needs " + ManifestSchema.quote(name) + ", which its manifest does "
                    + "not list in files (so its checksum cannot be checked); export the bundle again");
        }
        return regularFile(directory, name);
    }

    /**
     * {@code directory/name} with symlinks resolved (Python: {@code resolve_in_bundle}), which must be a
     * plain name, exist, and stay inside {@code directory}.
     */
    static File resolveInBundle(File directory, String name) throws BundleException {
        String problem = ManifestSchema.plainNameProblem(name);
        if (problem != null) {
            throw new BundleException("bundle file name " + ManifestSchema.quote(name) + " " + problem
                    + "; export the bundle again");
        }
        File link = new File(directory, name);
        File root;
        File target;
        try {
            root = directory.getCanonicalFile();
            target = link.getCanonicalFile();
        } catch (IOException e) {
            throw new BundleException("cannot resolve bundle file " + link + ": " + e.getMessage(), e);
        }
        if (!target.exists()) {
            throw new BundleException("bundle file " + link + " is missing; export the bundle again");
        }
        String inside = root.getPath().endsWith(File.separator) ? root.getPath() : root.getPath() + File.separator;
        if (!target.equals(root) && !target.getPath().startsWith(inside)) {
            throw new BundleException("bundle file " + link + " points outside the bundle folder (a symlink to "
                    + target + "); a bundle may only read its own files");
        }
        return target;
    }

    /**
     * {@link #resolveInBundle}, and the result must be a regular file: checked before anything opens
     * it, so a FIFO or a device (which would block the reader) is never opened.
     */
    private static File regularFile(File directory, String name) throws BundleException {
        File target = resolveInBundle(directory, name);
        if (!target.isFile()) { // false for folders, FIFOs, sockets and devices
            throw new BundleException("bundle file " + new File(directory, name)
                    + " is not a regular file; export the bundle again");
        }
        return target;
    }

    /** The bundle folder (null for a manifest parsed from text alone). */
    public File directory() {
        return directory;
    }

    /**
     * The bundle's ExecuTorch program, {@link #file file(PROGRAM_FILE)}: listed, inside the bundle
     * folder, a regular file.
     *
     * @throws BundleException if it is not (or the manifest was parsed without a folder)
     */
    public File programFile() throws BundleException {
        return file(PROGRAM_FILE);
    }

    /** The paths, most accurate first. */
    public List<PathInfo> paths() {
        return paths;
    }

    /** The path ids in manifest order. */
    public List<String> ids() {
        List<String> ids = new ArrayList<String>(paths.size());
        for (PathInfo p : paths) {
            ids.add(p.id());
        }
        return ids;
    }

    /**
     * @param id a path id
     * @return that path
     * @throws PolicyException if the bundle has no such path
     */
    public PathInfo path(String id) {
        for (PathInfo p : paths) {
            if (p.id().equals(id)) {
                return p;
            }
        }
        throw new PolicyException("bundle " + directory + " has no path '" + id + "'; paths: " + ids());
    }

    /** Class names, by logit index. */
    public List<String> classes() {
        return classes;
    }

    /** File name to sha256, as listed. */
    public Map<String, String> files() {
        return files;
    }

    /** The program's input. */
    public InputSpec input() {
        return input;
    }

    /**
     * The paired tests the bundle records ({@code ladder_tests}) that passed: (path, cheaper path)
     * pairs ({@link Ladder#pair}) where the path was found more accurate on held-out images. The
     * ladder ({@link Ladder#of(Manifest)}) keeps a path only above cheaper paths it beat.
     *
     * @return the passed pairs, unmodifiable (malformed records left out); null where the bundle
     *     records no tests (exported before the rule: the ladder is the non-dominated paths alone)
     */
    public Set<List<String>> passedPairs() {
        return passedPairs;
    }

    /** A fresh copy of the whole manifest as JSON (changing it changes nothing here). */
    public JSONObject toJson() {
        try {
            return new JSONObject(json);
        } catch (JSONException e) {
            throw new IllegalStateException("a validated manifest no longer parses", e);
        }
    }

    /** A fresh copy of the {@code policies} tables. */
    public JSONObject policyTables() {
        return toJson().optJSONObject("policies");
    }
}
