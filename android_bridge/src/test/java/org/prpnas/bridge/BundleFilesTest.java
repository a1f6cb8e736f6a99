package org.prpnas.bridge;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertThrows;
import static org.junit.Assert.assertTrue;
import static org.junit.Assume.assumeTrue;

import java.io.File;
import java.nio.file.FileSystems;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.json.JSONObject;
import org.junit.Before;
import org.junit.Rule;
import org.junit.Test;
import org.junit.rules.TemporaryFolder;

/**
 * The bundle file rules the Python runtime enforces (docs/security.md), on copies of the shipped
 * bundle: plain names only, nothing outside the bundle folder (by name or by symlink), regular files
 * only, and every file a backend reads listed and checksummed. Where a case names a real file, its
 * sha256 is listed correctly, so only the rule under test can refuse it.
 */
public class BundleFilesTest {
    @Rule
    public TemporaryFolder tmp = new TemporaryFolder();

    /** A fresh copy of the shipped bundle, {@code tmp/bundle}. */
    private File bundle;

    @Before
    public void copyBundle() throws Exception {
        bundle = Bundles.copy(new File(tmp.getRoot(), "bundle"));
    }

    private static void assertMentions(String message, String... parts) {
        for (String part : parts) {
            assertTrue("'" + part + "' not in: " + message, message.contains(part));
        }
        assertFalse("message spans lines: " + message, message.contains("\n"));
    }

    private static String refused(File dir) {
        return assertThrows(BundleException.class, () -> Manifest.load(dir)).getMessage();
    }

    private static JSONObject manifestOf(File dir) throws Exception {
        return new JSONObject(new String(Files.readAllBytes(new File(dir, Manifest.FILE_NAME).toPath()), "UTF-8"));
    }

    private static void writeManifest(File dir, JSONObject json) throws Exception {
        Bundles.write(new File(dir, Manifest.FILE_NAME), json.toString());
    }

    /** Lists {@code name} in the copy's {@code files} with the true sha256 of {@code content}. */
    private void list(String name, File content) throws Exception {
        JSONObject json = manifestOf(bundle);
        json.getJSONObject("files").put(name, Checksums.sha256(content));
        writeManifest(bundle, json);
    }

    private static void assumePosix() {
        assumeTrue("symlinks and FIFOs need a POSIX file system",
                FileSystems.getDefault().supportedFileAttributeViews().contains("posix"));
    }

    private static void mkfifo(File at) throws Exception {
        Process p = new ProcessBuilder("mkfifo", at.getPath()).redirectErrorStream(true).start();
        assertTrue("mkfifo did not finish", p.waitFor(30, TimeUnit.SECONDS));
        assertEquals("mkfifo " + at + " failed", 0, p.exitValue());
    }

    /** The ONNX graph file of the shipped bundle's {@code k}-th path ({@code -1}: the last). */
    private static String graph(int k) throws Exception {
        org.json.JSONArray paths = Bundles.rawJson().getJSONArray("paths");
        return paths.getJSONObject(k < 0 ? paths.length() + k : k).getString("onnx");
    }

    private static Path link(File at, String target) throws Exception {
        Files.deleteIfExists(at.toPath());
        return Files.createSymbolicLink(at.toPath(), new File(target).toPath());
    }

    @Test
    public void aValidCopyLoadsAndNamesItsOwnFiles() throws Exception {
        Manifest m = Manifest.load(bundle);
        File pte = new File(bundle, "supernet.pte").getCanonicalFile();
        assertEquals(pte, m.programFile());
        assertEquals(new File(bundle, "weights.bin").getCanonicalFile(), m.file("weights.bin"));
        for (int i = 0; i < m.paths().size(); i++) {
            String onnx = m.toJson().getJSONArray("paths").getJSONObject(i).getString("onnx");
            assertTrue(onnx, m.file(onnx).isFile());
        }
        assertEquals(m.files().get("supernet.pte"), Checksums.sha256(m.programFile()));
    }

    @Test
    public void symlinksThatStayInsideTheFolderLoad() throws Exception {
        assumePosix();
        // A graph moved into a subfolder and linked back; and the whole bundle reached through a link.
        String name = graph(-1);
        File graphs = new File(bundle, "graphs");
        assertTrue(graphs.mkdir());
        Files.move(new File(bundle, name).toPath(), new File(graphs, name).toPath());
        link(new File(bundle, name), "graphs/" + name);
        File viaLink = new File(tmp.getRoot(), "bundle-link");
        link(viaLink, bundle.getAbsolutePath());
        Manifest m = Manifest.load(viaLink);
        assertEquals(new File(graphs, name).getCanonicalFile(), m.file(name));
        Manifest.load(bundle);
    }

    @Test
    public void aParentNameIsRefused() throws Exception {
        File outside = new File(tmp.getRoot(), "x"); // bundle/../x: a real file with the listed sha256
        Bundles.copyFile(new File(bundle, "weights.bin"), outside);
        list("../x", outside);
        assertMentions(refused(bundle), "manifest.files name '../x' must be a plain file name inside the bundle "
                + "folder (no '/', '\\', ':' or '..')");

        JSONObject json = manifestOf(bundle);
        json.getJSONArray("paths").getJSONObject(0).put("onnx", "../x");
        writeManifest(bundle, json);
        assertMentions(refused(bundle), "manifest.paths[0].onnx must be a plain file name, got '../x'");

        json.getJSONObject("files").put("..", Checksums.sha256(outside));
        assertMentions(assertThrows(BundleException.class, () -> Bundles.parse(json)).getMessage(),
                "manifest.files name '..' must be a plain file name");
    }

    @Test
    public void anAbsoluteNameIsRefused() throws Exception {
        JSONObject json = manifestOf(bundle);
        json.getJSONObject("files").put("/etc/passwd", Checksums.sha256(new File(bundle, "weights.bin")));
        writeManifest(bundle, json);
        assertMentions(refused(bundle), "manifest.files name '/etc/passwd' must be a plain file name");

        File outside = tmp.newFile("outside.bin");
        Bundles.copyFile(new File(bundle, "weights.bin"), outside);
        bundle = Bundles.copy(tmp.newFolder("second"));
        list(outside.getAbsolutePath(), outside);
        assertMentions(refused(bundle), "manifest.files name '" + outside.getAbsolutePath() + "' must be a plain");

        Manifest m = Manifest.load(Bundles.copy(tmp.newFolder("clean")), false);
        assertMentions(assertThrows(BundleException.class, () -> m.file("/etc/passwd")).getMessage(),
                "needs '/etc/passwd', which its manifest does not list in files");
    }

    @Test
    public void aNameWithASlashOrOtherSeparatorIsRefused() throws Exception {
        File sub = new File(bundle, "sub");
        assertTrue(sub.mkdir());
        File inSub = new File(sub, "w.bin");
        Bundles.copyFile(new File(bundle, "weights.bin"), inSub);
        list("sub/w.bin", inSub);
        assertMentions(refused(bundle), "manifest.files name 'sub/w.bin' must be a plain file name");

        for (String name : new String[] {"sub\\w.bin", "c:w.bin"}) {
            JSONObject json = Bundles.shippedJson();
            json.getJSONObject("files").put(name, Checksums.sha256(inSub));
            assertMentions(assertThrows(BundleException.class, () -> Bundles.parse(json)).getMessage(),
                    "manifest.files name " + ManifestSchema.quote(name) + " must be a plain file name");
        }
        JSONObject json = Bundles.shippedJson();
        json.getJSONObject("files").put("w\n.bin", Checksums.sha256(inSub)).put("", Checksums.sha256(inSub));
        assertMentions(assertThrows(BundleException.class, () -> Bundles.parse(json)).getMessage(),
                "manifest.files name 'w\\n.bin' must not contain control characters",
                "manifest.files name '' must be a non-empty string");
    }

    @Test(timeout = 60_000) // opening a FIFO blocks until a writer comes: a hang here is a failure
    public void aFifoIsNeverOpened() throws Exception {
        assumePosix();
        File graph = new File(bundle, graph(-1));
        assertTrue(graph.delete());
        mkfifo(graph);
        assertMentions(refused(bundle), "bundle file " + graph + " is not a regular file", "export the bundle again");

        // The program as a FIFO, with file checks off: the engine's path is refused all the same.
        File pte = new File(bundle, "supernet.pte");
        assertTrue(pte.delete());
        mkfifo(pte);
        Manifest m = Manifest.load(bundle, false);
        assertMentions(assertThrows(BundleException.class, m::programFile).getMessage(),
                "bundle file " + pte + " is not a regular file");

        // A symlink to a FIFO inside the folder, and manifest.json itself as a FIFO.
        File other = Bundles.copy(tmp.newFolder("other"));
        File fifo = new File(other, "fifo");
        mkfifo(fifo);
        link(new File(other, "weights.bin"), "fifo");
        assertMentions(refused(other), "weights.bin is not a regular file");
        File manifest = new File(other, Manifest.FILE_NAME);
        assertTrue(manifest.delete());
        mkfifo(manifest);
        assertMentions(refused(other), "bundle file " + manifest + " is not a regular file");
    }

    @Test
    public void aSymlinkOutOfTheFolderIsRefused() throws Exception {
        assumePosix();
        File elsewhere = tmp.newFolder("elsewhere");
        String name = graph(-1);
        File graph = new File(bundle, name);
        File copy = new File(elsewhere, name); // same bytes: the checksum alone would pass it
        Bundles.copyFile(graph, copy);
        link(graph, copy.getAbsolutePath());
        assertMentions(refused(bundle), "bundle file " + graph + " points outside the bundle folder (a symlink to "
                + copy.getCanonicalFile() + "); a bundle may only read its own files");

        link(graph, "../elsewhere/" + name);
        assertMentions(refused(bundle), "bundle file " + graph + " points outside the bundle folder");
        Manifest unchecked = Manifest.load(bundle, false);
        assertMentions(assertThrows(BundleException.class, () -> unchecked.file(name)).getMessage(),
                "points outside the bundle folder");

        bundle = Bundles.copy(tmp.newFolder("second"));
        File manifest = new File(bundle, Manifest.FILE_NAME);
        File outsideManifest = new File(elsewhere, Manifest.FILE_NAME);
        Bundles.copyFile(manifest, outsideManifest);
        link(manifest, outsideManifest.getAbsolutePath());
        assertMentions(refused(bundle), "bundle file " + manifest + " points outside the bundle folder");
    }

    @Test
    public void everyFileAnEngineReadsMustBeListed() throws Exception {
        JSONObject json = manifestOf(bundle);
        json.getJSONObject("files").remove("weights.bin"); // still on disk, now unchecked
        writeManifest(bundle, json);
        assertMentions(refused(bundle), "manifest.files does not list weights.bin, which the ONNX graphs read");

        JSONObject noProgram = Bundles.shippedJson();
        noProgram.getJSONObject("files").remove("supernet.pte");
        assertMentions(assertThrows(BundleException.class, () -> Bundles.parse(noProgram)).getMessage(),
                "manifest.files does not list supernet.pte, which the ExecuTorch backend reads");

        JSONObject upper = Bundles.shippedJson();
        JSONObject files = upper.getJSONObject("files");
        files.put("weights.bin", files.getString("weights.bin").toUpperCase(java.util.Locale.ROOT));
        assertMentions(assertThrows(BundleException.class, () -> Bundles.parse(upper)).getMessage(),
                "manifest.files['weights.bin'] must be a sha256 hex digest");

        Manifest parsed = Bundles.parse(Bundles.shippedJson()); // no folder: no files to hand out
        assertMentions(assertThrows(BundleException.class, parsed::programFile).getMessage(),
                "parsed without a bundle folder");
    }
}
