using CloudVpn.KeyStores;
using CloudVpn.OpenVpn.Configuration;
using CloudVpn.OpenVpn.Pki;
using CloudVpn.OpenVpn.Supervision;
using CloudVpn.Tunnels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace CloudVpn.OpenVpn;

/// <summary>
/// The OpenVPN tunnel driver (name and family <c>openvpn</c>): runs the real openvpn binary (2.5+) as a supervised
/// child with a configuration rendered from the <see cref="TunnelSpec"/> and a PKI kept in the key store.
/// In a spec, <see cref="DeviceSpec.PrivateKey"/> names the PKI root id in the key store, each
/// <see cref="PeerSpec.PublicKey"/> is a client certificate common name, and the peer's /32 inside
/// <c>Device.Addresses[0]</c> is its static tunnel address.
/// </summary>
public sealed class OpenVpnDriver : ITunnelDriver
{
    /// <summary>The driver name.</summary>
    public const string DriverName = "openvpn";

    /// <summary>The protocol family.</summary>
    public const string FamilyName = "openvpn";

    private readonly OpenVpnOptions _options;
    private readonly Func<string?, IKeyStore> _stores;
    private readonly TimeProvider _time;
    private readonly ILoggerFactory _loggers;
    private readonly IOpenVpnProcessLauncher _launcher;

    /// <summary>Creates the driver from DI.</summary>
    public OpenVpnDriver(IOptions<OpenVpnOptions> options, IKeyStoreProvider keyStores, TimeProvider? timeProvider = null, ILoggerFactory? loggerFactory = null)
        : this(options?.Value ?? throw new ArgumentNullException(nameof(options)), (keyStores ?? throw new ArgumentNullException(nameof(keyStores))).GetStore, timeProvider, loggerFactory)
    {
    }

    /// <summary>Creates the driver over one key store (no DI).</summary>
    public OpenVpnDriver(OpenVpnOptions options, IKeyStore keyStore, TimeProvider? timeProvider = null, ILoggerFactory? loggerFactory = null)
        : this(options, _ => keyStore ?? throw new ArgumentNullException(nameof(keyStore)), timeProvider, loggerFactory)
    {
    }

    internal OpenVpnDriver(OpenVpnOptions options, Func<string?, IKeyStore> stores, TimeProvider? timeProvider, ILoggerFactory? loggerFactory, IOpenVpnProcessLauncher? launcher = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        var validation = new OpenVpnOptionsValidator().Validate(null, options);
        if (validation.Failed)
        {
            throw new OptionsValidationException(OpenVpnOptions.SectionName, typeof(OpenVpnOptions), validation.Failures);
        }

        _options = options;
        _stores = stores;
        _time = timeProvider ?? TimeProvider.System;
        _loggers = loggerFactory ?? NullLoggerFactory.Instance;
        _launcher = launcher ?? OpenVpnProcessLauncher.Instance;
    }

    /// <inheritdoc />
    public string Name => DriverName;

    /// <inheritdoc />
    public string Family => FamilyName;

    /// <inheritdoc />
    public int Priority => 0;

    /// <inheritdoc />
    public ValueTask<DriverProbeResult> ProbeAsync(CancellationToken cancellationToken = default) =>
        OpenVpnProbe.ProbeAsync(_options.BinaryPath, cancellationToken);

    /// <inheritdoc />
    public async ValueTask<ITunnel> OpenAsync(TunnelSpec spec, CancellationToken cancellationToken = default) =>
        await OpenServerAsync(spec, cancellationToken);

    /// <summary>Like <see cref="OpenAsync"/>, typed: the returned tunnel also revokes peers and exports profiles.</summary>
    /// <exception cref="OpenVpnConfigurationException">The spec is not valid for OpenVPN (every problem listed).</exception>
    /// <exception cref="OpenVpnStartException">openvpn did not come up (its last log lines included).</exception>
    public async Task<OpenVpnTunnel> OpenServerAsync(TunnelSpec spec, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var plan = OpenVpnServerPlan.FromSpec(spec);
        var binary = OpenVpnProbe.FindBinary(_options.BinaryPath)
            ?? throw new OpenVpnStartException(_options.BinaryPath is null ? "the 'openvpn' binary is not on PATH." : $"CloudVpn:OpenVpn:BinaryPath: '{_options.BinaryPath}' does not exist.", []);
        var pki = CreatePki(spec);
        return await OpenVpnTunnel.StartAsync(plan, pki, _options, binary, _launcher, _time, _loggers, cancellationToken);
    }

    /// <summary>The PKI a spec's server uses: rooted at <see cref="DeviceSpec.PrivateKey"/>'s id in its key store.</summary>
    public OpenVpnPki CreatePki(TunnelSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var reference = spec.Device.PrivateKey ?? throw new OpenVpnConfigurationException(["Device.PrivateKey: is null; name the PKI root id in the key store, for example 'openvpn/gw1'."]);
        if (string.IsNullOrWhiteSpace(reference.KeyId))
        {
            throw new OpenVpnConfigurationException(["Device.PrivateKey.KeyId: is empty; name the PKI root id in the key store, for example 'openvpn/gw1'."]);
        }

        return new OpenVpnPki(_stores(reference.Store), reference.KeyId, _options.Pki, _time);
    }
}
