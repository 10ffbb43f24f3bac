using System.Globalization;
using System.Net;
using CloudVpn.Kubernetes.Injection;

namespace CloudVpn.Cli;

/// <summary>The <c>cloudvpn</c> command line: argument parsing and dispatch.</summary>
public static class CliApp
{
    /// <summary>Exit code for bad usage or bad input.</summary>
    public const int UsageError = 2;

    private const string Usage = """
        usage:
          cloudvpn inject [-f FILE] [--image IMAGE] [--kube-version MAJOR.MINOR] [--form auto|native|container] [--route CIDR]...
          cloudvpn webhook --tls-cert CERT.pem --tls-key KEY.pem [--listen ADDRESS:PORT] [--kubeconfig FILE] [--kube-version MAJOR.MINOR]
                           [--image IMAGE] [--form auto|native|container] [--route CIDR]...
        """;

    /// <summary>Runs the command line; returns the exit code.</summary>
    public static async Task<int> RunAsync(string[] args, TextReader stdin, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(stdin);
        ArgumentNullException.ThrowIfNull(stdout);
        ArgumentNullException.ThrowIfNull(stderr);
        if (args.Length == 0 || args[0] is "-h" or "--help" or "help")
        {
            await stderr.WriteLineAsync(Usage).ConfigureAwait(false);
            return args.Length == 0 ? UsageError : 0;
        }

        CommandOptions options;
        try
        {
            options = CommandOptions.Parse(args.AsSpan(1));
        }
        catch (ArgumentException e)
        {
            await stderr.WriteLineAsync($"cloudvpn {args[0]}: {e.Message}\n{Usage}").ConfigureAwait(false);
            return UsageError;
        }

        switch (args[0])
        {
            case "inject":
                return await InjectCommand.RunAsync(options, stdin, stdout, stderr).ConfigureAwait(false);
            case "webhook":
                return await WebhookServer.RunAsync(options, stderr, cancellationToken).ConfigureAwait(false);
            default:
                await stderr.WriteLineAsync($"cloudvpn: unknown command '{args[0]}'\n{Usage}").ConfigureAwait(false);
                return UsageError;
        }
    }
}

/// <summary>Options shared by the commands.</summary>
public sealed class CommandOptions
{
    /// <summary>Input file for inject (null: stdin).</summary>
    public string? File { get; private set; }

    /// <summary>Injection options.</summary>
    public SidecarInjectionOptions Injection { get; } = new();

    /// <summary>The API server version, when given.</summary>
    public Version? KubeVersion { get; private set; }

    /// <summary>Webhook listen address.</summary>
    public IPEndPoint Listen { get; private set; } = new(IPAddress.Any, 8443);

    /// <summary>Webhook certificate (PEM).</summary>
    public string? TlsCert { get; private set; }

    /// <summary>Webhook private key (PEM).</summary>
    public string? TlsKey { get; private set; }

    /// <summary>Kubeconfig used to read the server version.</summary>
    public string? Kubeconfig { get; private set; }

    /// <summary>Parses the options after the command name; the message names the bad option.</summary>
    public static CommandOptions Parse(ReadOnlySpan<string> args)
    {
        var o = new CommandOptions();
        for (var i = 0; i < args.Length; i++)
        {
            var name = args[i];
            string Value(ReadOnlySpan<string> a, ref int index) =>
                index + 1 < a.Length ? a[++index] : throw new ArgumentException($"{name}: a value is required");

            switch (name)
            {
                case "-f" or "--file":
                    o.File = Value(args, ref i);
                    break;
                case "--image":
                    o.Injection.Image = Value(args, ref i);
                    break;
                case "--form":
                    var form = Value(args, ref i);
                    o.Injection.Form = Enum.TryParse<SidecarForm>(form, ignoreCase: true, out var f) && !int.TryParse(form, out _)
                        ? f : throw new ArgumentException($"--form: '{form}' is not auto, native or container");
                    break;
                case "--route":
                    var cidr = Value(args, ref i);
                    o.Injection.Routes.Add(IPNetwork.TryParse(cidr, out var n) ? n : throw new ArgumentException($"--route: '{cidr}' is not a CIDR"));
                    break;
                case "--kube-version":
                    var v = Value(args, ref i);
                    o.KubeVersion = Version.TryParse(v.TrimStart('v'), out var parsed) ? parsed : throw new ArgumentException($"--kube-version: '{v}' is not MAJOR.MINOR");
                    break;
                case "--listen":
                    var l = Value(args, ref i);
                    o.Listen = IPEndPoint.TryParse(l, out var ep) && ep.Port != 0 ? ep : throw new ArgumentException($"--listen: '{l}' is not ADDRESS:PORT");
                    break;
                case "--tls-cert":
                    o.TlsCert = Value(args, ref i);
                    break;
                case "--tls-key":
                    o.TlsKey = Value(args, ref i);
                    break;
                case "--kubeconfig":
                    o.Kubeconfig = Value(args, ref i);
                    break;
                default:
                    throw new ArgumentException($"unknown option '{name}'");
            }
        }

        o.Injection.Validate();
        return o;
    }

    /// <inheritdoc />
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"image={Injection.Image} form={Injection.Form} kube={KubeVersion}");
}
