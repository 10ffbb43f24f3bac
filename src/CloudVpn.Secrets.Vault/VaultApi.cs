using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text.Json;
using CloudVpn.KeyStores;
using Microsoft.Extensions.Logging;
using Polly;
using Polly.Retry;
using Polly.Timeout;

namespace CloudVpn.Secrets.Vault;

/// <summary>
/// Sends requests to Vault's HTTP API: adds the token and namespace headers, retries timeouts and 5xx answers with
/// exponential backoff and jitter (never a 4xx), and turns error answers into messages carrying Vault's own error text.
/// Request bodies (which may hold a secret) never appear in a message or log line.
/// </summary>
internal sealed partial class VaultApi
{
    private const string TokenHeader = "X-Vault-Token";
    private const string NamespaceHeader = "X-Vault-Namespace";
    private readonly HttpClient _http;
    private readonly VaultKeyStoreOptions _options;
    private readonly ILogger _logger;
    private readonly ResiliencePipeline<HttpResponseMessage> _pipeline;

    public VaultApi(HttpClient http, VaultKeyStoreOptions options, TimeProvider time, ILogger logger)
    {
        _http = http;
        _options = options;
        _logger = logger;
        Tokens = new VaultTokenSource(this, options, time, logger);
        _pipeline = new ResiliencePipelineBuilder<HttpResponseMessage> { TimeProvider = time }
            .AddRetry(new RetryStrategyOptions<HttpResponseMessage>
            {
                MaxRetryAttempts = Math.Max(options.MaxRetries, 1),
                ShouldHandle = args => ValueTask.FromResult(options.MaxRetries > 0 && IsTransient(args.Outcome, args.Context.CancellationToken)),
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = options.RetryBaseDelay,
                MaxDelay = TimeSpan.FromSeconds(30),
                OnRetry = args =>
                {
                    LogRetry(_logger, args.AttemptNumber + 1, args.Outcome.Result is { } r ? ((int)r.StatusCode).ToString(System.Globalization.CultureInfo.InvariantCulture) : args.Outcome.Exception?.GetType().Name ?? "?", args.RetryDelay);
                    return ValueTask.CompletedTask;
                },
            })
            .AddTimeout(options.AttemptTimeout)
            .Build();
    }

    public VaultTokenSource Tokens { get; }

    /// <summary>True for outcomes worth another attempt: timeouts, connection failures and 5xx answers.</summary>
    internal static bool IsTransient(Outcome<HttpResponseMessage> outcome, CancellationToken callerToken) => outcome switch
    {
        { Exception: TimeoutRejectedException } => true,
        { Exception: HttpRequestException } => true,
        { Exception: OperationCanceledException } => !callerToken.IsCancellationRequested,
        { Result: { } response } => IsTransient(response.StatusCode),
        _ => false,
    };

    /// <summary>5xx answers are retried; 4xx never (they mean the request itself is wrong or refused).</summary>
    internal static bool IsTransient(HttpStatusCode status) => (int)status >= 500;

    /// <summary>
    /// Sends one request. <paramref name="writeBody"/> (re-run for every attempt) writes the JSON body; the buffer it
    /// wrote into is zeroed afterwards. With <paramref name="authenticated"/> the token is added, and a 403 with a
    /// login-based method logs in again once (the token may have been revoked or expired).
    /// </summary>
    public async Task<VaultAnswer> SendAsync(HttpMethod method, string path, Action<Utf8JsonWriter>? writeBody, bool authenticated, CancellationToken cancellationToken, string? tokenOverride = null)
    {
        var token = authenticated ? await Tokens.GetTokenAsync(cancellationToken) : tokenOverride;
        var answer = await SendOnceAsync(method, path, writeBody, token, cancellationToken);
        if (authenticated && answer.Status == HttpStatusCode.Forbidden && Tokens.CanLogIn)
        {
            answer.Dispose();
            LogReLogin(_logger, method.Method, path);
            Tokens.Invalidate();
            answer = await SendOnceAsync(method, path, writeBody, await Tokens.GetTokenAsync(cancellationToken), cancellationToken);
        }

        return answer;
    }

    private async Task<VaultAnswer> SendOnceAsync(HttpMethod method, string path, Action<Utf8JsonWriter>? writeBody, string? token, CancellationToken cancellationToken)
    {
        var uri = new Uri(_options.Address!, path);
        byte[]? body = null;
        var bodyLength = 0;
        if (writeBody is not null)
        {
            (body, bodyLength) = WriteBody(writeBody);
        }

        try
        {
            HttpResponseMessage response;
            try
            {
                response = await _pipeline.ExecuteAsync(
                    async ct =>
                    {
                        using var request = new HttpRequestMessage(method, uri);
                        if (token is not null)
                        {
                            request.Headers.TryAddWithoutValidation(TokenHeader, token);
                        }

                        if (!string.IsNullOrEmpty(_options.Namespace))
                        {
                            request.Headers.TryAddWithoutValidation(NamespaceHeader, _options.Namespace);
                        }

                        if (body is not null)
                        {
                            request.Content = new ReadOnlyMemoryContent(body.AsMemory(0, bodyLength));
                            request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
                        }

                        return await _http.SendAsync(request, HttpCompletionOption.ResponseContentRead, ct);
                    },
                    cancellationToken);
            }
            catch (TimeoutRejectedException ex)
            {
                throw new KeyStoreException($"Vault did not answer {method.Method} /{path} within {_options.AttemptTimeout} after {_options.MaxRetries + 1} attempts.", ex);
            }
            catch (HttpRequestException ex)
            {
                throw new KeyStoreException($"Vault at {_options.Address} could not be reached for {method.Method} /{path} after {_options.MaxRetries + 1} attempts: {ex.Message}", ex);
            }

            using (response)
            {
                var bytes = await response.Content.ReadAsByteArrayAsync(cancellationToken);
                return new VaultAnswer(method.Method, path, response.StatusCode, bytes);
            }
        }
        finally
        {
            if (body is not null)
            {
                CryptographicOperations.ZeroMemory(body);
            }
        }
    }

    private static (byte[] Buffer, int Length) WriteBody(Action<Utf8JsonWriter> writeBody)
    {
        // A fixed buffer (not a growing one) so that no copy of a secret is left behind in a discarded array.
        var buffer = GC.AllocateUninitializedArray<byte>(64 * 1024, pinned: true);
        using var stream = new MemoryStream(buffer, writable: true);
        using (var writer = new Utf8JsonWriter(stream))
        {
            writeBody(writer);
        }

        return (buffer, (int)stream.Position);
    }

    [LoggerMessage(EventId = 300, Level = LogLevel.Warning, Message = "Vault request attempt {Attempt} failed ({Outcome}); retrying in {Delay}")]
    private static partial void LogRetry(ILogger logger, int attempt, string outcome, TimeSpan delay);

    [LoggerMessage(EventId = 301, Level = LogLevel.Information, Message = "Vault refused the token for {Method} /{Path}; logging in again")]
    private static partial void LogReLogin(ILogger logger, string method, string path);
}

/// <summary>One answer from Vault: status and body; the body is zeroed on dispose (it may hold a secret).</summary>
internal sealed class VaultAnswer(string method, string path, HttpStatusCode status, byte[] body) : IDisposable
{
    public HttpStatusCode Status { get; } = status;

    public byte[] Body { get; } = body;

    public bool IsSuccess => (int)Status is >= 200 and < 300;

    /// <summary>The <c>errors</c> array of a Vault error body (<c>{"errors":["..."]}</c>); empty when there is none.</summary>
    public IReadOnlyList<string> Errors => ParseErrors(Body);

    internal static IReadOnlyList<string> ParseErrors(ReadOnlySpan<byte> body)
    {
        if (body.IsEmpty)
        {
            return [];
        }

        try
        {
            var reader = new Utf8JsonReader(body);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return [];
            }

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("errors"u8))
                {
                    reader.Read();
                    var list = new List<string>();
                    if (reader.TokenType == JsonTokenType.StartArray)
                    {
                        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                        {
                            if (reader.TokenType == JsonTokenType.String)
                            {
                                list.Add(reader.GetString()!);
                            }
                        }
                    }

                    return list;
                }

                reader.Read();
                reader.Skip();
            }
        }
        catch (JsonException)
        {
            // not JSON (a proxy's HTML page, say): no Vault error text to report
        }

        return [];
    }

    /// <summary>An exception naming the request, the status and Vault's error text (never the request body).</summary>
    public KeyStoreException ToException(string what)
    {
        var errors = Errors;
        var text = errors.Count == 0 ? "no error text" : string.Join("; ", errors);
        return new KeyStoreException($"{what}: Vault answered {(int)Status} ({Status}) to {method} /{path}: {text}");
    }

    public void Dispose() => CryptographicOperations.ZeroMemory(Body);
}
