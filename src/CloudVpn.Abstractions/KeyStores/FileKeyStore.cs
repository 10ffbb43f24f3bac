using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text;
using CloudVpn.Interop;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace CloudVpn.KeyStores;

/// <summary>
/// The embedded key store: one folder (0700), one sub-folder per key id, one file per version (0600).
/// Every write goes to a temporary file that is flushed to disk and then renamed into place, under an exclusive
/// file lock per id, so a crash leaves the previous versions intact and compare-and-swap holds across processes.
/// Each file carries a SHA-256 checksum; a damaged file is reported, never returned.
/// </summary>
public sealed partial class FileKeyStore : IKeyStore, KeyRotation.IKeyHistoryPruning
{
    private const UnixFileMode FolderMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
    private const UnixFileMode FileMode0600 = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private const string LockFileName = ".lock";
    private const string VersionPrefix = "v";
    private const string VersionSuffix = ".key";
    private const string TempSuffix = ".tmp";
    private const int HeaderLength = 4 + 8 + 4;
    private const int ChecksumLength = 32;
    private static readonly byte[] Magic = "CVK1"u8.ToArray();

    private readonly FileKeyStoreOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Lock _pulseLock = new();
    private TaskCompletionSource _pulse = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Creates the store; the folder is created (0700) when missing and tightened to 0700 when looser.</summary>
    public FileKeyStore(FileKeyStoreOptions options, TimeProvider? timeProvider = null, ILogger<FileKeyStore>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        var validation = new FileKeyStoreOptionsValidator().Validate("file", options);
        if (validation.Failed)
        {
            throw new ArgumentException(validation.FailureMessage, nameof(options));
        }

        _options = options;
        _time = timeProvider ?? TimeProvider.System;
        _logger = (ILogger?)logger ?? NullLogger.Instance;
        RootDirectory = Path.GetFullPath(options.Directory);
        EnsurePrivateFolder(RootDirectory);
    }

    /// <summary>The folder holding the keys.</summary>
    public string RootDirectory { get; }

    /// <inheritdoc />
    public ValueTask<StoredSecret?> GetAsync(string id, long? version = null, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var folder = FolderFor(id);
        if (!Directory.Exists(folder))
        {
            return ValueTask.FromResult<StoredSecret?>(null);
        }

        var versions = ReadVersionNumbers(folder);
        if (versions.Count == 0)
        {
            return ValueTask.FromResult<StoredSecret?>(null);
        }

        var wanted = version ?? versions[^1];
        if (!versions.Contains(wanted))
        {
            return ValueTask.FromResult<StoredSecret?>(null);
        }

        try
        {
            return ValueTask.FromResult<StoredSecret?>(ReadVersion(id, folder, wanted));
        }
        catch (FileNotFoundException)
        {
            // Pruned by another writer between listing and reading.
            return ValueTask.FromResult<StoredSecret?>(null);
        }
    }

    /// <inheritdoc />
    public async ValueTask<long> PutAsync(string id, ReadOnlyMemory<byte> value, long? expectedVersion = null, CancellationToken cancellationToken = default)
    {
        if (expectedVersion is < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(expectedVersion), "The expected version is 0 (must not exist) or a positive version.");
        }

        var folder = FolderFor(id);
        EnsurePrivateFolder(folder);
        long written;
        using (await AcquireLockAsync(id, folder, cancellationToken))
        {
            RemoveTemporaryFiles(folder);
            var versions = ReadVersionNumbers(folder);
            var latest = versions.Count == 0 ? 0 : versions[^1];
            if (expectedVersion is { } expected && expected != latest)
            {
                throw new KeyStoreConflictException(id, expected, latest);
            }

            written = latest + 1;
            WriteVersionFile(folder, written, value.Span);
            Prune(folder, versions, written);
        }

        LogWritten(_logger, id, written);
        Pulse();
        return written;
    }

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<SecretVersionInfo>> ListVersionsAsync(string id, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var folder = FolderFor(id);
        if (!Directory.Exists(folder))
        {
            return ValueTask.FromResult<IReadOnlyList<SecretVersionInfo>>([]);
        }

        var result = new List<SecretVersionInfo>();
        foreach (var v in ReadVersionNumbers(folder))
        {
            try
            {
                result.Add(new SecretVersionInfo(id, v, ReadCreatedAt(id, folder, v)));
            }
            catch (FileNotFoundException)
            {
                // pruned concurrently
            }
        }

        return ValueTask.FromResult<IReadOnlyList<SecretVersionInfo>>(result);
    }

    /// <inheritdoc />
    public async ValueTask<bool> DeleteAsync(string id, CancellationToken cancellationToken = default)
    {
        var folder = FolderFor(id);
        if (!Directory.Exists(folder))
        {
            return false;
        }

        bool existed;
        using (await AcquireLockAsync(id, folder, cancellationToken))
        {
            var versions = ReadVersionNumbers(folder);
            existed = versions.Count > 0;
            foreach (var v in versions)
            {
                File.Delete(Path.Combine(folder, VersionFileName(v)));
            }

            RemoveTemporaryFiles(folder);
            Libc.FsyncDirectory(folder);
        }

        if (existed)
        {
            LogDeleted(_logger, id);
            Pulse();
        }

        return existed;
    }

    /// <inheritdoc />
    public async ValueTask<int> PruneAsync(string id, int keep, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(keep, 1);
        var folder = FolderFor(id);
        if (!Directory.Exists(folder))
        {
            return 0;
        }

        using (await AcquireLockAsync(id, folder, cancellationToken))
        {
            var versions = ReadVersionNumbers(folder);
            var excess = Math.Max(0, versions.Count - keep);
            for (var i = 0; i < excess; i++)
            {
                File.Delete(Path.Combine(folder, VersionFileName(versions[i])));
            }

            if (excess > 0)
            {
                Libc.FsyncDirectory(folder);
            }

            return excess;
        }
    }

    /// <inheritdoc />
    public async IAsyncEnumerable<KeyStoreChange> WatchAsync(string? id = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        if (id is not null)
        {
            _ = FolderFor(id); // validates the id
        }

        var known = Snapshot(id);
        while (!cancellationToken.IsCancellationRequested)
        {
            Task pulse;
            lock (_pulseLock)
            {
                pulse = _pulse.Task;
            }

            try
            {
                using var delayCts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                var delay = Task.Delay(_options.PollInterval, _time, delayCts.Token);
                await Task.WhenAny(delay, pulse).WaitAsync(cancellationToken);
                await delayCts.CancelAsync();
            }
            catch (OperationCanceledException)
            {
                yield break;
            }

            var current = Snapshot(id);
            foreach (var (key, version) in current)
            {
                if (!known.TryGetValue(key, out var before) || before != version)
                {
                    yield return new KeyStoreChange(key, KeyStoreChangeKind.Written, version);
                }
            }

            foreach (var key in known.Keys)
            {
                if (!current.ContainsKey(key))
                {
                    yield return new KeyStoreChange(key, KeyStoreChangeKind.Deleted, 0);
                }
            }

            known = current;
        }
    }

    /// <summary>Maps a key id to a file name that is safe on any file system: [A-Za-z0-9._-] kept, the rest %XX-escaped.</summary>
    internal static string EncodeId(string id)
    {
        ArgumentNullException.ThrowIfNull(id);
        if (id.Length == 0 || id.Length > 200)
        {
            throw new ArgumentException("A key id must be 1 to 200 characters long.", nameof(id));
        }

        var sb = new StringBuilder(id.Length);
        foreach (var b in Encoding.UTF8.GetBytes(id))
        {
            var c = (char)b;
            if (char.IsAsciiLetterOrDigit(c) || c is '-' or '_' || (c == '.' && sb.Length > 0))
            {
                sb.Append(c);
            }
            else
            {
                sb.Append('%').Append(b.ToString("X2", CultureInfo.InvariantCulture));
            }
        }

        return sb.ToString();
    }

    internal static string DecodeId(string name)
    {
        var bytes = new List<byte>(name.Length);
        for (var i = 0; i < name.Length; i++)
        {
            if (name[i] == '%' && i + 2 < name.Length + 0 && byte.TryParse(name.AsSpan(i + 1, 2), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var b))
            {
                bytes.Add(b);
                i += 2;
            }
            else
            {
                bytes.Add((byte)name[i]);
            }
        }

        return Encoding.UTF8.GetString([.. bytes]);
    }

    private static string VersionFileName(long version) => $"{VersionPrefix}{version.ToString("D12", CultureInfo.InvariantCulture)}{VersionSuffix}";

    private static void EnsurePrivateFolder(string folder)
    {
        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(folder);
            return;
        }

        if (!Directory.Exists(folder))
        {
            Directory.CreateDirectory(folder, FolderMode);
        }

        if ((File.GetUnixFileMode(folder) & ~FolderMode) != 0)
        {
            File.SetUnixFileMode(folder, FolderMode);
        }
    }

    private static FileStreamOptions PrivateFileOptions(System.IO.FileMode mode, FileAccess access)
    {
        var options = new FileStreamOptions { Mode = mode, Access = access, Share = FileShare.None };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = FileMode0600;
        }

        return options;
    }

    private static List<long> ReadVersionNumbers(string folder)
    {
        var result = new List<long>();
        foreach (var path in Directory.EnumerateFiles(folder, VersionPrefix + "*" + VersionSuffix))
        {
            var name = Path.GetFileName(path.AsSpan());
            var digits = name[VersionPrefix.Length..^VersionSuffix.Length];
            if (long.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out var v) && v > 0)
            {
                result.Add(v);
            }
        }

        result.Sort();
        return result;
    }

    private static void RemoveTemporaryFiles(string folder)
    {
        // Only called under the id's lock: any temporary file left is from a writer that died mid-write.
        foreach (var path in Directory.EnumerateFiles(folder, "*" + TempSuffix))
        {
            File.Delete(path);
        }
    }

    private string FolderFor(string id) => Path.Combine(RootDirectory, EncodeId(id));

    private void WriteVersionFile(string folder, long version, ReadOnlySpan<byte> value)
    {
        var length = HeaderLength + value.Length + ChecksumLength;
        var buffer = GC.AllocateUninitializedArray<byte>(length, pinned: true);
        try
        {
            Magic.CopyTo(buffer, 0);
            BinaryPrimitives.WriteInt64LittleEndian(buffer.AsSpan(4), _time.GetUtcNow().ToUnixTimeMilliseconds());
            BinaryPrimitives.WriteInt32LittleEndian(buffer.AsSpan(12), value.Length);
            value.CopyTo(buffer.AsSpan(HeaderLength));
            SHA256.HashData(buffer.AsSpan(0, HeaderLength + value.Length), buffer.AsSpan(HeaderLength + value.Length));

            var temp = Path.Combine(folder, $".{VersionFileName(version)}.{Guid.NewGuid():N}{TempSuffix}");
            using (var stream = new FileStream(temp, PrivateFileOptions(System.IO.FileMode.CreateNew, FileAccess.Write)))
            {
                stream.Write(buffer);
                stream.Flush(flushToDisk: true);
            }

            File.Move(temp, Path.Combine(folder, VersionFileName(version)), overwrite: false);
            Libc.FsyncDirectory(folder);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(buffer);
        }
    }

    private void Prune(string folder, List<long> existing, long written)
    {
        var all = new List<long>(existing) { written };
        var excess = all.Count - _options.MaxVersions;
        for (var i = 0; i < excess; i++)
        {
            File.Delete(Path.Combine(folder, VersionFileName(all[i])));
        }

        if (excess > 0)
        {
            Libc.FsyncDirectory(folder);
        }
    }

    private StoredSecret ReadVersion(string id, string folder, long version)
    {
        var bytes = File.ReadAllBytes(Path.Combine(folder, VersionFileName(version)));
        try
        {
            var (createdAt, valueLength) = ParseAndVerify(id, version, bytes);
            return new StoredSecret(id, version, createdAt, bytes.AsSpan(HeaderLength, valueLength).ToArray());
        }
        finally
        {
            CryptographicOperations.ZeroMemory(bytes);
        }
    }

    private DateTimeOffset ReadCreatedAt(string id, string folder, long version)
    {
        var bytes = File.ReadAllBytes(Path.Combine(folder, VersionFileName(version)));
        try
        {
            return ParseAndVerify(id, version, bytes).CreatedAt;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(bytes);
        }
    }

    private (DateTimeOffset CreatedAt, int ValueLength) ParseAndVerify(string id, long version, byte[] bytes)
    {
        if (bytes.Length < HeaderLength + ChecksumLength || !bytes.AsSpan(0, 4).SequenceEqual(Magic))
        {
            throw Corrupt(id, version, "not a CloudVpn key file");
        }

        var valueLength = BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(12));
        if (valueLength < 0 || HeaderLength + valueLength + ChecksumLength != bytes.Length)
        {
            throw Corrupt(id, version, "length does not match its header");
        }

        Span<byte> hash = stackalloc byte[ChecksumLength];
        SHA256.HashData(bytes.AsSpan(0, HeaderLength + valueLength), hash);
        if (!CryptographicOperations.FixedTimeEquals(hash, bytes.AsSpan(HeaderLength + valueLength)))
        {
            throw Corrupt(id, version, "checksum mismatch");
        }

        return (DateTimeOffset.FromUnixTimeMilliseconds(BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(4))), valueLength);
    }

    private KeyStoreException Corrupt(string id, long version, string why)
    {
        LogCorrupt(_logger, id, version, why);
        return new KeyStoreException($"Key '{id}' version {version} in '{RootDirectory}' is damaged ({why}); restore it from a backup or write a new version.");
    }

    private async ValueTask<FileStream> AcquireLockAsync(string id, string folder, CancellationToken cancellationToken)
    {
        var path = Path.Combine(folder, LockFileName);
        var started = _time.GetTimestamp();
        var delay = TimeSpan.FromMilliseconds(2);
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            try
            {
                // FileShare.None takes an exclusive flock(2) on Unix: held until disposed, released by the kernel if the process dies.
                return new FileStream(path, PrivateFileOptions(System.IO.FileMode.OpenOrCreate, FileAccess.ReadWrite));
            }
            catch (IOException) when (_time.GetElapsedTime(started) < _options.LockTimeout)
            {
                await Task.Delay(delay, cancellationToken);
                delay = TimeSpan.FromMilliseconds(Math.Min(delay.TotalMilliseconds * 2, 50));
            }
            catch (IOException ex)
            {
                throw new KeyStoreException($"Key '{id}': another writer held the lock on '{path}' for longer than {_options.LockTimeout}.", ex);
            }
        }
    }

    private Dictionary<string, long> Snapshot(string? id)
    {
        var result = new Dictionary<string, long>(StringComparer.Ordinal);
        IEnumerable<string> folders = id is null
            ? Directory.EnumerateDirectories(RootDirectory)
            : [FolderFor(id)];
        foreach (var folder in folders)
        {
            if (!Directory.Exists(folder))
            {
                continue;
            }

            var versions = ReadVersionNumbers(folder);
            if (versions.Count > 0)
            {
                result[id ?? DecodeId(Path.GetFileName(folder))] = versions[^1];
            }
        }

        return result;
    }

    private void Pulse()
    {
        TaskCompletionSource previous;
        lock (_pulseLock)
        {
            previous = _pulse;
            _pulse = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        previous.TrySetResult();
    }

    [LoggerMessage(EventId = 100, Level = LogLevel.Information, Message = "Key {KeyId} version {Version} written")]
    private static partial void LogWritten(ILogger logger, string keyId, long version);

    [LoggerMessage(EventId = 101, Level = LogLevel.Information, Message = "Key {KeyId} deleted with all its versions")]
    private static partial void LogDeleted(ILogger logger, string keyId);

    [LoggerMessage(EventId = 102, Level = LogLevel.Error, Message = "Key {KeyId} version {Version} is damaged: {Why}")]
    private static partial void LogCorrupt(ILogger logger, string keyId, long version, string why);
}
