using CloudVpn.Samples.Gateway;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]

// Usage: CloudVpn.Samples.Gateway [rotate-keys [--force]] [--config FILE.json] [--data-dir DIR] [--listen-port N] [--interface NAME] [--address A.B.C.D/LEN]
//        [--public-endpoint HOST:PORT] [--http ADDR:PORT] [--driver NAME] [--add-peer NAME] [--Section:Key=value ...]
// Exit codes: 0 stopped normally, 1 failed while running, 2 bad settings (every problem is named on stderr).
return await GatewayProgram.RunAsync(args);

namespace CloudVpn.Samples.Gateway
{
    internal static class GatewayProgram
    {
        public const int ExitBadSettings = 2;

        public static async Task<int> RunAsync(string[] args)
        {
            if (args.Length > 0 && args[0] == "rotate-keys")
            {
                return await RotateKeysAsync(args[1..]);
            }

            if (!TryExtractAddPeer(args, out var rest, out var addPeer, out var argError))
            {
                await Console.Error.WriteLineAsync(argError);
                return ExitBadSettings;
            }

            await using var app = TryBuild(rest, GatewayMode.Serve, out var buildError);
            if (app is null)
            {
                await Console.Error.WriteLineAsync(buildError);
                return ExitBadSettings;
            }

            if (addPeer is not null)
            {
                return await AddPeerAsync(app.Services, addPeer);
            }

            try
            {
                await app.StartAsync();
            }
            catch (Exception e) when (GatewayApp.SettingsErrors(e) is { } errors)
            {
                await WriteSettingsErrorsAsync(errors);
                return ExitBadSettings;
            }
            catch (Exception e) when (e is IOException or InvalidOperationException or UnauthorizedAccessException)
            {
                await Console.Error.WriteLineAsync($"The gateway did not start: {e.Message}");
                return 1;
            }

            await app.WaitForShutdownAsync();
            return Environment.ExitCode;
        }

        /// <summary>Takes <c>--add-peer NAME</c> (or <c>--add-peer=NAME</c>) out of the arguments.</summary>
        public static bool TryExtractAddPeer(string[] args, out string[] rest, out string? name, out string error)
        {
            var list = new List<string>();
            name = null;
            error = string.Empty;
            for (var i = 0; i < args.Length; i++)
            {
                if (args[i] == "--add-peer")
                {
                    if (i + 1 >= args.Length || args[i + 1].StartsWith("--", StringComparison.Ordinal))
                    {
                        rest = [];
                        error = "--add-peer: give the new peer's name, for example --add-peer laptop";
                        return false;
                    }

                    name = args[++i];
                }
                else if (args[i].StartsWith("--add-peer=", StringComparison.Ordinal))
                {
                    name = args[i]["--add-peer=".Length..];
                }
                else
                {
                    list.Add(args[i]);
                }
            }

            rest = [.. list];
            return true;
        }

        private static async Task<int> AddPeerAsync(IServiceProvider services, string name)
        {
            try
            {
                services.GetRequiredService<IStartupValidator>().Validate();
            }
            catch (Exception e) when (GatewayApp.SettingsErrors(e) is { } errors)
            {
                await WriteSettingsErrorsAsync(errors);
                return ExitBadSettings;
            }

            var options = services.GetRequiredService<IOptions<GatewayOptions>>().Value;
            try
            {
                var key = await services.GetRequiredService<GatewayKey>().LoadOrCreateAsync(CancellationToken.None);
                var peer = PeerEnrollment.Add(name, options, key.PublicKey);
                await Console.Out.WriteAsync(peer.ClientConfiguration);
                await Console.Error.WriteLineAsync($"Added peer '{peer.Peer.Name}' ({peer.Peer.AllowedIps[0]}) to {options.PeersFile}; a running gateway picks it up within {options.PeersFilePollInterval.TotalSeconds:0} s.");
                await Console.Error.WriteAsync(ClientConfig.RenderQr(peer.ClientConfiguration));
                return 0;
            }
            catch (Exception e) when (e is PeersFileException or InvalidOperationException)
            {
                await Console.Error.WriteLineAsync(e.Message);
                return ExitBadSettings;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or CloudVpn.KeyStores.KeyStoreException)
            {
                await Console.Error.WriteLineAsync($"--add-peer failed: {e.Message}");
                return 1;
            }
        }

        /// <summary>
        /// <c>rotate-keys [--force] [settings]</c>: rotates the gateway key once if it is due (always with --force), through
        /// publish, switch, overlap and retire, then exits. Exit 0 also when nothing was due.
        /// </summary>
        private static async Task<int> RotateKeysAsync(string[] args)
        {
            var force = args.Contains("--force");
            await using var app = TryBuild([.. args.Where(a => a != "--force")], GatewayMode.RotateKeys, out var buildError);
            if (app is null)
            {
                await Console.Error.WriteLineAsync(buildError);
                return ExitBadSettings;
            }

            try
            {
                app.Services.GetRequiredService<IStartupValidator>().Validate();
            }
            catch (Exception e) when (GatewayApp.SettingsErrors(e) is { } errors)
            {
                await WriteSettingsErrorsAsync(errors);
                return ExitBadSettings;
            }

            try
            {
                var rotated = await app.Services.GetRequiredService<CloudVpn.KeyRotation.KeyRotationLoop>().RunOnceAsync(force);
                await Console.Error.WriteLineAsync(rotated == 0 ? "No key was due for rotation." : $"Rotated {rotated} key(s).");
                return 0;
            }
            catch (Exception e) when (e is CloudVpn.KeyStores.KeyStoreException or CloudVpn.KeyStores.KeyStoreConflictException or InvalidOperationException or IOException)
            {
                await Console.Error.WriteLineAsync($"Key rotation failed: {e.Message}");
                return 1;
            }
        }

        /// <summary>Builds the host; a settings file that is missing or not JSON is a settings error, not a crash.</summary>
        private static Microsoft.AspNetCore.Builder.WebApplication? TryBuild(string[] args, GatewayMode mode, out string error)
        {
            error = string.Empty;
            try
            {
                return GatewayApp.Build(args, mode: mode);
            }
            catch (Exception e) when (e is FileNotFoundException or InvalidDataException or FormatException)
            {
                error = $"The gateway did not start: --config: {e.Message}{(e.InnerException is { } inner ? $" ({inner.Message})" : string.Empty)}";
                return null;
            }
        }

        private static async Task WriteSettingsErrorsAsync(IReadOnlyList<string> errors)
        {
            await Console.Error.WriteLineAsync($"The gateway did not start: {errors.Count} setting(s) are invalid:");
            foreach (var error in errors)
            {
                await Console.Error.WriteLineAsync($"  - {error}");
            }
        }
    }
}
