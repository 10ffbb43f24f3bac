namespace CloudVpn.WireGuard.Netlink;

/// <summary>
/// The Linux kernel's WireGuard over generic netlink: reads a device (WG_CMD_GET_DEVICE) and changes it
/// (WG_CMD_SET_DEVICE), splitting and coalescing messages as needed. Create the interface itself with
/// <see cref="RtNetlink.CreateLink"/> (kind <c>wireguard</c>).
/// </summary>
public sealed class WireGuardNetlink : IDisposable
{
    private const int Enoent = 2;
    private const int MaxDumpAttempts = 5;

    private readonly NetlinkSocket _socket;

    private WireGuardNetlink(NetlinkSocket socket, ushort familyId, uint version)
    {
        _socket = socket;
        FamilyId = familyId;
        FamilyVersion = version;
    }

    /// <summary>The generic netlink id the kernel gave the <c>wireguard</c> family.</summary>
    public ushort FamilyId { get; }

    /// <summary>The family version the kernel reports (1).</summary>
    public uint FamilyVersion { get; }

    /// <summary>Largest SET message in bytes; bigger updates are split. Lower it to see splitting with fewer peers.</summary>
    public int MaxMessageSize { get; init; } = WireGuardGenl.DefaultMaxMessageSize;

    /// <summary>Number of SET messages sent so far (for tests and metrics: a one-peer change should cost one).</summary>
    public long SetMessagesSent { get; private set; }

    /// <summary>
    /// Opens generic netlink (in <paramref name="networkNamespace"/> when given) and resolves the <c>wireguard</c> family.
    /// </summary>
    /// <exception cref="WireGuardModuleNotLoadedException">The family does not resolve: the kernel module is not loaded.</exception>
    public static WireGuardNetlink Open(string? networkNamespace = null)
    {
        var socket = NetlinkSocket.Open(NetlinkSocket.NetlinkGeneric, networkNamespace is null ? null : NetworkNamespace.PathOf(networkNamespace));
        try
        {
            var (id, version) = ResolveFamily(socket);
            return new WireGuardNetlink(socket, id, version);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Checks whether the <c>wireguard</c> family resolves, without throwing; the reason says why not.</summary>
    public static bool TryResolveFamily(out ushort familyId, out string reason, string? networkNamespace = null)
    {
        familyId = 0;
        try
        {
            using var socket = NetlinkSocket.Open(NetlinkSocket.NetlinkGeneric, networkNamespace is null ? null : NetworkNamespace.PathOf(networkNamespace));
            (familyId, var version) = ResolveFamily(socket);
            reason = $"generic netlink family 'wireguard' resolves (id {familyId}, version {version})";
            return true;
        }
        catch (WireGuardModuleNotLoadedException e)
        {
            reason = e.Message;
            return false;
        }
        catch (NetlinkException e)
        {
            reason = $"cannot query generic netlink: {e.Message}";
            return false;
        }
        catch (PlatformNotSupportedException e)
        {
            reason = e.Message;
            return false;
        }
    }

    /// <summary>Reads the device <paramref name="interfaceName"/> with all its peers (replies split over messages are coalesced).</summary>
    /// <exception cref="NetlinkException">ENODEV: no such interface; EOPNOTSUPP: the interface is not WireGuard.</exception>
    public WireGuardDeviceState GetDevice(string interfaceName)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(interfaceName);
        for (var attempt = 1; ; attempt++)
        {
            var device = new WireGuardDeviceState { Name = interfaceName };
            var message = WireGuardGenl.EncodeGet(FamilyId, interfaceName);
            bool consistent;
            try
            {
                consistent = _socket.Dump(message, $"WG_CMD_GET_DEVICE {interfaceName}", (in NetlinkMessage reply) =>
                {
                    if (reply.Type == FamilyId)
                    {
                        WireGuardGenl.DecodeGetPart(reply, device);
                    }
                });
            }
            catch
            {
                device.Dispose(); // zero any key already decoded
                throw;
            }
            if (consistent || attempt == MaxDumpAttempts)
            {
                return device;
            }

            // The peer list changed during the dump (NLM_F_DUMP_INTR): read it again.
            device.Dispose();
        }
    }

    /// <summary>Applies <paramref name="update"/> to <paramref name="interfaceName"/>, in as many messages as it needs; returns how many.</summary>
    /// <exception cref="NetlinkException">The kernel refused a message (ENODEV for an unknown interface, EINVAL for a bad field).</exception>
    public int SetDevice(string interfaceName, WireGuardDeviceUpdate update)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(interfaceName);
        ArgumentNullException.ThrowIfNull(update);
        var messages = WireGuardGenl.EncodeSet(FamilyId, interfaceName, update, MaxMessageSize);
        for (var i = 0; i < messages.Count; i++)
        {
            _socket.Request(messages[i], messages.Count == 1
                ? $"WG_CMD_SET_DEVICE {interfaceName}"
                : $"WG_CMD_SET_DEVICE {interfaceName} (message {i + 1} of {messages.Count})");
            SetMessagesSent++;
        }

        return messages.Count;
    }

    /// <summary>Sends a hand-built request and waits for its ACK (tests of the kernel's refusals).</summary>
    internal void SendRaw(NetlinkMessageBuilder message, string operation) => _socket.Request(message, operation);

    /// <inheritdoc />
    public void Dispose() => _socket.Dispose();

    private static (ushort, uint) ResolveFamily(NetlinkSocket socket)
    {
        (ushort, uint) result = default;
        try
        {
            socket.Query(WireGuardGenl.EncodeGetFamily(WireGuardGenl.FamilyName), "CTRL_CMD_GETFAMILY wireguard", (in NetlinkMessage reply) =>
            {
                result = WireGuardGenl.DecodeFamily(reply);
            });
        }
        catch (NetlinkException e) when (e.Errno == Enoent)
        {
            throw new WireGuardModuleNotLoadedException();
        }

        return result;
    }
}

/// <summary>The generic netlink family <c>wireguard</c> does not exist: the kernel has no WireGuard module loaded.</summary>
public sealed class WireGuardModuleNotLoadedException()
    : Exception("WireGuard kernel module not loaded: the generic netlink family 'wireguard' does not resolve (run 'modprobe wireguard' on the node, or use the userspace driver).");
