using System.Buffers.Binary;
using System.Diagnostics;
using System.Security.Cryptography;
using CloudVpn.KeyStores;

namespace CloudVpn.Abstractions.Tests;

/// <summary>The file key store across processes: crash safety and compare-and-swap between writers.</summary>
public sealed class FileKeyStoreProcessTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "cloudvpn-fksp-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_dir))
        {
            Directory.Delete(_dir, recursive: true);
        }
    }

    private static string WriterPath
    {
        get
        {
            // tests/CloudVpn.Abstractions.Tests/bin/<cfg>/net10.0/ -> tests/CloudVpn.TestTools.KeyStoreWriter/bin/<cfg>/net10.0/
            var baseDir = AppContext.BaseDirectory;
            var path = baseDir.Replace("CloudVpn.Abstractions.Tests", "CloudVpn.TestTools.KeyStoreWriter", StringComparison.Ordinal);
            return Path.Combine(path, "CloudVpn.TestTools.KeyStoreWriter.dll");
        }
    }

    private static Process StartWriter(params string[] args)
    {
        Assert.True(File.Exists(WriterPath), $"test tool not built: {WriterPath}");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, UseShellExecute = false };
        psi.ArgumentList.Add(WriterPath);
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        return Process.Start(psi)!;
    }

    [Fact]
    public async Task Killing_a_writer_mid_write_leaves_every_existing_version_whole()
    {
        for (var round = 0; round < 3; round++)
        {
            using var writer = StartWriter("loop", _dir, "gw", "65536");
            Assert.Equal("started", await writer.StandardOutput.ReadLineAsync());
            await Task.Delay(300 + (round * 170));
            writer.Kill(); // SIGKILL: no cleanup runs
            await writer.WaitForExitAsync();
        }

        var store = new FileKeyStore(new FileKeyStoreOptions { Directory = _dir, MaxVersions = 1000 });
        var versions = await store.ListVersionsAsync("gw");
        Assert.True(versions.Count > 3, $"the writer made only {versions.Count} versions");
        foreach (var v in versions)
        {
            using var secret = await store.GetAsync("gw", v.Version);
            Assert.NotNull(secret);
            Assert.Equal(65536, secret.Value.Length);
            Assert.True(SHA256.HashData(secret.Value[32..]).AsSpan().SequenceEqual(secret.Value[..32]), $"version {v.Version} is not whole");
        }

        // versions are contiguous: no number was lost or half-made
        Assert.Equal(Enumerable.Range(1, versions.Count).Select(i => (long)i), versions.Select(v => v.Version));

        // the next writer cleans up any temporary file a killed writer left and continues the sequence
        var next = await store.PutAsync("gw", new byte[8], expectedVersion: versions[^1].Version);
        Assert.Equal(versions[^1].Version + 1, next);
        Assert.Empty(Directory.EnumerateFiles(Directory.EnumerateDirectories(_dir).Single(), "*.tmp"));
    }

    [Fact]
    public async Task Compare_and_swap_holds_across_processes()
    {
        const int PerWriter = 40;
        using var a = StartWriter("increment", _dir, "counter", PerWriter.ToString(System.Globalization.CultureInfo.InvariantCulture));
        using var b = StartWriter("increment", _dir, "counter", PerWriter.ToString(System.Globalization.CultureInfo.InvariantCulture));
        var outA = await a.StandardOutput.ReadToEndAsync();
        var outB = await b.StandardOutput.ReadToEndAsync();
        await a.WaitForExitAsync();
        await b.WaitForExitAsync();
        Assert.Equal(0, a.ExitCode);
        Assert.Equal(0, b.ExitCode);

        var store = new FileKeyStore(new FileKeyStoreOptions { Directory = _dir, MaxVersions = 1000 });
        using var final = await store.GetAsync("counter");
        Assert.Equal(2 * PerWriter, BinaryPrimitives.ReadInt64LittleEndian(final!.Value));
        Assert.Equal(2 * PerWriter, final.Version);
        Assert.StartsWith("done", outA, StringComparison.Ordinal);
        Assert.StartsWith("done", outB, StringComparison.Ordinal);
    }
}
