using System.Text.Json;
using CloudVpn.KeyStores;
using Microsoft.Extensions.Logging;

namespace CloudVpn.Secrets.Vault;

/// <summary>A token's lease as Vault reported it, and when to renew it.</summary>
/// <param name="ObtainedAt">When the lease started (login, renewal or lookup).</param>
/// <param name="Duration">The lease length; zero for a token that never expires (a root token, say).</param>
/// <param name="Renewable">Whether <c>renew-self</c> may extend it.</param>
internal readonly record struct VaultTokenLease(DateTimeOffset ObtainedAt, TimeSpan Duration, bool Renewable)
{
    public DateTimeOffset ExpiresAt => Duration == TimeSpan.Zero ? DateTimeOffset.MaxValue : ObtainedAt + Duration;

    /// <summary>When the token should be refreshed: after <paramref name="fraction"/> of its lease; never for a non-expiring token.</summary>
    public DateTimeOffset RefreshAt(double fraction) =>
        Duration == TimeSpan.Zero ? DateTimeOffset.MaxValue : ObtainedAt + TimeSpan.FromTicks((long)(Duration.Ticks * fraction));

    public bool IsRefreshDue(DateTimeOffset now, double fraction) => now >= RefreshAt(fraction);
}

/// <summary>
/// Holds the current Vault token: logs in (Kubernetes, AppRole) or looks the static token up, and renews it once
/// <see cref="VaultKeyStoreOptions.RenewAfterFraction"/> of its lease has passed, before it expires. A login-based
/// token that can no longer be extended far enough is replaced by a new login.
/// </summary>
internal sealed partial class VaultTokenSource(VaultApi api, VaultKeyStoreOptions options, TimeProvider time, ILogger logger)
{
    private readonly SemaphoreSlim _gate = new(1, 1);
    private string? _token;
    private VaultTokenLease _lease;
    private TimeSpan _loginLease;

    /// <summary>Whether a refused token can be replaced by logging in again.</summary>
    public bool CanLogIn => options.AuthMethod != VaultAuthMethod.Token || options.TokenPath is not null;

    /// <summary>The current lease (for tests and status).</summary>
    public VaultTokenLease Lease => _lease;

    /// <summary>Forgets the token so that the next request logs in again.</summary>
    public void Invalidate()
    {
        _gate.Wait();
        try
        {
            _token = null;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>The token to send, logging in or renewing first when needed.</summary>
    public async ValueTask<string> GetTokenAsync(CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken);
        try
        {
            if (_token is null)
            {
                await AcquireAsync(cancellationToken);
            }
            else if (_lease.IsRefreshDue(time.GetUtcNow(), options.RenewAfterFraction))
            {
                await RefreshAsync(cancellationToken);
            }

            return _token!;
        }
        finally
        {
            _gate.Release();
        }
    }

    private async Task AcquireAsync(CancellationToken cancellationToken)
    {
        if (options.AuthMethod == VaultAuthMethod.Token)
        {
            _token = options.Token ?? ReadFile(options.TokenPath!, nameof(options.TokenPath));
            await LookupSelfAsync(cancellationToken);
            return;
        }

        await LoginAsync(cancellationToken);
    }

    private async Task RefreshAsync(CancellationToken cancellationToken)
    {
        if (_lease.Renewable)
        {
            var renewed = await TryRenewAsync(cancellationToken);
            var longEnough = options.AuthMethod == VaultAuthMethod.Token || renewed && _lease.Duration.Ticks * 2 >= _loginLease.Ticks;
            if (renewed && longEnough)
            {
                return;
            }
        }

        if (CanLogIn)
        {
            await AcquireAsync(cancellationToken);
        }
        else if (time.GetUtcNow() >= _lease.ExpiresAt)
        {
            throw new KeyStoreException($"The Vault token expired at {_lease.ExpiresAt:O} and cannot be renewed; give the store a new token ({nameof(options.Token)} or {nameof(options.TokenPath)}).");
        }
    }

    private async Task LoginAsync(CancellationToken cancellationToken)
    {
        string mount;
        string? secretA;
        string? secretB;
        Action<Utf8JsonWriter> body;
        if (options.AuthMethod == VaultAuthMethod.Kubernetes)
        {
            mount = options.AuthMountPath ?? "kubernetes";
            secretA = ReadFile(options.KubernetesJwtPath, nameof(options.KubernetesJwtPath));
            body = w =>
            {
                w.WriteStartObject();
                w.WriteString("role", options.KubernetesRole);
                w.WriteString("jwt", secretA);
                w.WriteEndObject();
            };
        }
        else
        {
            mount = options.AuthMountPath ?? "approle";
            secretB = options.AppRoleSecretId ?? ReadFile(options.AppRoleSecretIdPath!, nameof(options.AppRoleSecretIdPath));
            body = w =>
            {
                w.WriteStartObject();
                w.WriteString("role_id", options.AppRoleRoleId);
                w.WriteString("secret_id", secretB);
                w.WriteEndObject();
            };
        }

        var path = VaultPaths.Auth(mount, "login");
        using var answer = await api.SendAsync(HttpMethod.Post, path, body, authenticated: false, cancellationToken);
        if (!answer.IsSuccess)
        {
            throw answer.ToException($"Vault {options.AuthMethod} login failed");
        }

        ReadAuth(answer, $"{options.AuthMethod} login");
        _loginLease = _lease.Duration;
        LogLoggedIn(logger, options.AuthMethod.ToString(), _lease.Duration, _lease.Renewable);
    }

    private async Task LookupSelfAsync(CancellationToken cancellationToken)
    {
        using var answer = await api.SendAsync(HttpMethod.Get, "v1/auth/token/lookup-self", null, authenticated: false, cancellationToken, tokenOverride: _token);
        if (!answer.IsSuccess)
        {
            _token = null;
            throw answer.ToException("Vault token lookup failed");
        }

        using var doc = JsonDocument.Parse(answer.Body.AsMemory());
        if (!doc.RootElement.TryGetProperty("data", out var data) || data.ValueKind != JsonValueKind.Object)
        {
            throw new KeyStoreException("Vault token lookup answer has no 'data' object.");
        }

        var ttl = data.TryGetProperty("ttl", out var t) && t.TryGetInt64(out var s) ? s : 0;
        var renewable = data.TryGetProperty("renewable", out var r) && r.ValueKind == JsonValueKind.True;
        _lease = new VaultTokenLease(time.GetUtcNow(), TimeSpan.FromSeconds(ttl), renewable);
        _loginLease = _lease.Duration;
    }

    private async Task<bool> TryRenewAsync(CancellationToken cancellationToken)
    {
        using var answer = await api.SendAsync(
            HttpMethod.Post,
            "v1/auth/token/renew-self",
            w =>
            {
                w.WriteStartObject();
                w.WriteEndObject();
            },
            authenticated: false,
            cancellationToken,
            tokenOverride: _token);
        if (!answer.IsSuccess)
        {
            LogRenewFailed(logger, (int)answer.Status, string.Join("; ", answer.Errors));
            return false;
        }

        ReadAuth(answer, "token renewal");
        LogRenewed(logger, _lease.Duration);
        return true;
    }

    private void ReadAuth(VaultAnswer answer, string what)
    {
        using var doc = JsonDocument.Parse(answer.Body.AsMemory());
        if (!doc.RootElement.TryGetProperty("auth", out var auth) || auth.ValueKind != JsonValueKind.Object)
        {
            throw new KeyStoreException($"Vault {what} answer has no 'auth' object.");
        }

        if (!auth.TryGetProperty("client_token", out var token) || token.ValueKind != JsonValueKind.String || token.GetString() is not { Length: > 0 } value)
        {
            throw new KeyStoreException($"Vault {what} answer has no 'auth.client_token'.");
        }

        var lease = auth.TryGetProperty("lease_duration", out var l) && l.TryGetInt64(out var seconds) ? seconds : 0;
        var renewable = auth.TryGetProperty("renewable", out var r) && r.ValueKind == JsonValueKind.True;
        _token = value;
        _lease = new VaultTokenLease(time.GetUtcNow(), TimeSpan.FromSeconds(lease), renewable);
    }

    private static string ReadFile(string path, string field)
    {
        try
        {
            var text = File.ReadAllText(path).Trim();
            return text.Length > 0 ? text : throw new KeyStoreException($"{field}: the file '{path}' is empty.");
        }
        catch (IOException ex)
        {
            throw new KeyStoreException($"{field}: the file '{path}' cannot be read: {ex.Message}", ex);
        }
        catch (UnauthorizedAccessException ex)
        {
            throw new KeyStoreException($"{field}: the file '{path}' cannot be read: {ex.Message}", ex);
        }
    }

    [LoggerMessage(EventId = 310, Level = LogLevel.Information, Message = "Vault {Method} login: token lease {Lease}, renewable {Renewable}")]
    private static partial void LogLoggedIn(ILogger logger, string method, TimeSpan lease, bool renewable);

    [LoggerMessage(EventId = 311, Level = LogLevel.Debug, Message = "Vault token renewed: lease {Lease}")]
    private static partial void LogRenewed(ILogger logger, TimeSpan lease);

    [LoggerMessage(EventId = 312, Level = LogLevel.Warning, Message = "Vault token renewal refused ({Status}): {Errors}")]
    private static partial void LogRenewFailed(ILogger logger, int status, string errors);
}
