using System.Net;
using System.Text.Json.Serialization;

namespace CloudVpn.Samples.Sidecar;

/// <summary>The sidecar's /status answer.</summary>
public sealed record SidecarStatus(bool Ready, string Reason, string? Endpoint, int Failovers, int Reloads);

/// <summary>Source-generated JSON for <see cref="SidecarStatus"/>.</summary>
[JsonSerializable(typeof(SidecarStatus))]
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
public sealed partial class SidecarJson : JsonSerializerContext;

/// <summary><c>--wait-ready</c>: polls the running sidecar's /readyz (the plain-container form's post-start hook).</summary>
public static class ReadinessWaiter
{
    /// <summary>Returns 0 once /readyz answers 200, 1 after <paramref name="timeout"/>.</summary>
    public static async Task<int> WaitAsync(IPEndPoint http, TimeSpan timeout, TextWriter log, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(http);
        ArgumentNullException.ThrowIfNull(log);
        time ??= TimeProvider.System;
        var host = http.Address.Equals(IPAddress.Any) ? IPAddress.Loopback : http.Address;
        var uri = new Uri($"http://{new IPEndPoint(host, http.Port)}/readyz");
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var started = time.GetTimestamp();
        while (time.GetElapsedTime(started) < timeout)
        {
            try
            {
                using var response = await client.GetAsync(uri).ConfigureAwait(false);
                if (response.IsSuccessStatusCode)
                {
                    return 0;
                }
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
            {
                // not listening yet
            }

            await Task.Delay(TimeSpan.FromMilliseconds(250), time).ConfigureAwait(false);
        }

        await log.WriteLineAsync($"cloudvpn-sidecar: {uri} not ready after {timeout.TotalSeconds:0} s").ConfigureAwait(false);
        return 1;
    }
}
