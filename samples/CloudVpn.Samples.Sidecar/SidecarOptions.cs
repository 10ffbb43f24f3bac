using System.Globalization;
using System.Net;

namespace CloudVpn.Samples.Sidecar;

/// <summary>Settings of the sidecar, from the command line (the injector passes them) or environment.</summary>
public sealed class SidecarOptions
{
    /// <summary>Folder of the mounted client Secret; holds one wg-quick file (<c>wg0.conf</c>, or the only <c>*.conf</c>).</summary>
    public string ConfigDirectory { get; set; } = "/etc/cloudvpn";

    /// <summary>Writable folder for the key store and the UAPI socket (an emptyDir in the pod).</summary>
    public string StateDirectory { get; set; } = "/run/cloudvpn";

    /// <summary>The tunnel interface.</summary>
    public string Interface { get; set; } = "cvpn0";

    /// <summary>The gateway's name (for logs).</summary>
    public string Gateway { get; set; } = "";

    /// <summary>Health endpoint address.</summary>
    public IPEndPoint Http { get; set; } = new(IPAddress.Loopback, 9102);

    /// <summary>Address probed through the tunnel (default: the first host of the gateway peer's first allowed network).</summary>
    public IPAddress? ProbeAddress { get; set; }

    /// <summary>Probe period.</summary>
    public TimeSpan ProbeInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Consecutive failed probes after which the sidecar moves to another gateway address.</summary>
    public int FailoverAfter { get; set; } = 3;

    /// <summary>How often the mounted configuration is checked for changes.</summary>
    public TimeSpan ReloadInterval { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary><c>--wait-ready</c>: wait until the running sidecar's /readyz answers 200, then exit (post-start hook).</summary>
    public bool WaitReady { get; set; }

    /// <summary>Parses the command line; the message names every bad option.</summary>
    public static SidecarOptions Parse(IReadOnlyList<string> args)
    {
        var o = new SidecarOptions();
        var errors = new List<string>();
        for (var i = 0; i < args.Count; i++)
        {
            var name = args[i];
            if (name == "--wait-ready")
            {
                o.WaitReady = true;
                continue;
            }

            if (i + 1 >= args.Count)
            {
                errors.Add($"{name}: a value is required");
                break;
            }

            var value = args[++i];
            switch (name)
            {
                case "--config-dir":
                    o.ConfigDirectory = value;
                    break;
                case "--state-dir":
                    o.StateDirectory = value;
                    break;
                case "--interface":
                    if (value.Length is 0 or > 15 || value.Contains('/', StringComparison.Ordinal))
                    {
                        errors.Add($"--interface: '{value}' is not an interface name (1-15 characters, no '/')");
                    }

                    o.Interface = value;
                    break;
                case "--gateway":
                    o.Gateway = value;
                    break;
                case "--http":
                    if (IPEndPoint.TryParse(value, out var ep) && ep.Port != 0)
                    {
                        o.Http = ep;
                    }
                    else
                    {
                        errors.Add($"--http: '{value}' is not ADDRESS:PORT");
                    }

                    break;
                case "--probe":
                    if (IPAddress.TryParse(value, out var probe))
                    {
                        o.ProbeAddress = probe;
                    }
                    else
                    {
                        errors.Add($"--probe: '{value}' is not an IP address");
                    }

                    break;
                case "--failover-after":
                    if (int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n is >= 1 and <= 100)
                    {
                        o.FailoverAfter = n;
                    }
                    else
                    {
                        errors.Add($"--failover-after: '{value}' is not a number of probes from 1 to 100");
                    }

                    break;
                default:
                    errors.Add($"unknown option '{name}'");
                    break;
            }
        }

        return errors.Count == 0 ? o : throw new ArgumentException(string.Join("; ", errors));
    }
}
