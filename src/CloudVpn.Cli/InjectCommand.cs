using System.Text;
using CloudVpn.Kubernetes.Injection;
using k8s;
using k8s.Models;
using YamlException = YamlDotNet.Core.YamlException;

namespace CloudVpn.Cli;

/// <summary>
/// <c>cloudvpn inject</c>: reads YAML documents and writes them back with every opted-in pod template injected.
/// Documents that are not workloads, or do not opt in, are written back byte for byte.
/// </summary>
public static class InjectCommand
{
    /// <summary>Runs the command.</summary>
    public static async Task<int> RunAsync(CommandOptions options, TextReader stdin, TextWriter stdout, TextWriter stderr)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(stdin);
        ArgumentNullException.ThrowIfNull(stdout);
        ArgumentNullException.ThrowIfNull(stderr);
        string input;
        try
        {
            input = options.File is null or "-" ? await stdin.ReadToEndAsync().ConfigureAwait(false) : await File.ReadAllTextAsync(options.File).ConfigureAwait(false);
        }
        catch (IOException e)
        {
            await stderr.WriteLineAsync($"cloudvpn inject: cannot read {options.File}: {e.Message}").ConfigureAwait(false);
            return CliApp.UsageError;
        }

        try
        {
            var (output, injected) = Inject(input, new SidecarInjector(options.Injection), options.KubeVersion);
            await stdout.WriteAsync(output).ConfigureAwait(false);
            await stderr.WriteLineAsync($"cloudvpn inject: {injected} pod template(s) injected").ConfigureAwait(false);
            return 0;
        }
        catch (InjectionException e)
        {
            await stderr.WriteLineAsync($"cloudvpn inject: {e.Message}").ConfigureAwait(false);
            return 1;
        }
    }

    /// <summary>Injects every opted-in pod template in a YAML stream; returns the new stream and how many were injected.</summary>
    /// <exception cref="InjectionException">A document cannot be parsed or an opted-in template cannot be injected; the message names the document.</exception>
    public static (string Output, int Injected) Inject(string yaml, SidecarInjector injector, Version? kubeVersion)
    {
        ArgumentNullException.ThrowIfNull(yaml);
        ArgumentNullException.ThrowIfNull(injector);
        var output = new StringBuilder();
        var injected = 0;
        var documents = SplitDocuments(yaml);
        for (var i = 0; i < documents.Count; i++)
        {
            var (separator, body) = documents[i];
            output.Append(separator);
            string? replaced;
            try
            {
                replaced = InjectDocument(body, injector, kubeVersion);
            }
            catch (Exception e) when (e is YamlException or InjectionException or FormatException)
            {
                throw new InjectionException($"document {i + 1}: {e.Message}");
            }

            if (replaced is null)
            {
                output.Append(body);
            }
            else
            {
                injected++;
                output.Append(replaced);
                if (!replaced.EndsWith('\n'))
                {
                    output.Append('\n');
                }
            }
        }

        return (output.ToString(), injected);
    }

    private static string? InjectDocument(string body, SidecarInjector injector, Version? kubeVersion)
    {
        if (string.IsNullOrWhiteSpace(StripComments(body)))
        {
            return null;
        }

        // Any model with apiVersion and kind reads the head of a document; V1Status is the smallest such model.
        var head = KubernetesYaml.Deserialize<V1Status>(body, strict: false);
        (string? apiVersion, string? kind) = (head.ApiVersion, head.Kind);
        switch (apiVersion, kind)
        {
            case ("v1", "Pod"):
                var pod = KubernetesYaml.Deserialize<V1Pod>(body, strict: false);
                var (result, r) = injector.Inject(pod, kubeVersion);
                return r.Changed ? KubernetesYaml.Serialize(result) : null;
            case ("apps/v1", "Deployment"):
                return Template(KubernetesYaml.Deserialize<V1Deployment>(body, strict: false), d => d.Spec?.Template, injector, kubeVersion);
            case ("apps/v1", "StatefulSet"):
                return Template(KubernetesYaml.Deserialize<V1StatefulSet>(body, strict: false), s => s.Spec?.Template, injector, kubeVersion);
            case ("apps/v1", "DaemonSet"):
                return Template(KubernetesYaml.Deserialize<V1DaemonSet>(body, strict: false), d => d.Spec?.Template, injector, kubeVersion);
            case ("apps/v1", "ReplicaSet"):
                return Template(KubernetesYaml.Deserialize<V1ReplicaSet>(body, strict: false), d => d.Spec?.Template, injector, kubeVersion);
            case ("batch/v1", "Job"):
                return Template(KubernetesYaml.Deserialize<V1Job>(body, strict: false), j => j.Spec?.Template, injector, kubeVersion);
            case ("batch/v1" or "batch/v1beta1", "CronJob"):
                // batch/v1beta1 CronJob has the same shape as batch/v1; the apiVersion is kept as written.
                var cron = KubernetesYaml.Deserialize<V1CronJob>(body, strict: false);
                var text = Template(cron, c => c.Spec?.JobTemplate?.Spec?.Template, injector, kubeVersion);
                return text;
            default:
                return null;
        }
    }

    private static string? Template<T>(T workload, Func<T, V1PodTemplateSpec?> template, SidecarInjector injector, Version? kubeVersion)
    {
        var t = template(workload);
        if (t?.Spec is null)
        {
            return null;
        }

        t.Metadata ??= new V1ObjectMeta();
        var result = injector.InjectTemplate(t.Metadata, t.Spec, kubeVersion);
        return result.Changed ? KubernetesYaml.Serialize(workload) : null;
    }

    private static string StripComments(string body) =>
        string.Join('\n', body.Split('\n').Where(l => !l.TrimStart().StartsWith('#')));

    /// <summary>Splits a YAML stream at <c>---</c> lines, keeping each separator line with the document after it.</summary>
    internal static List<(string Separator, string Body)> SplitDocuments(string yaml)
    {
        var documents = new List<(string, string)>();
        var separator = "";
        var body = new StringBuilder();
        var lines = yaml.Split('\n');
        for (var i = 0; i < lines.Length; i++)
        {
            var text = lines[i];
            var withNewline = i < lines.Length - 1 ? text + "\n" : text;
            if (text.TrimEnd() == "---" || text.StartsWith("--- ", StringComparison.Ordinal) || text.StartsWith("---#", StringComparison.Ordinal))
            {
                if (body.Length > 0 || separator.Length > 0)
                {
                    documents.Add((separator, body.ToString()));
                }

                separator = withNewline;
                body.Clear();
            }
            else
            {
                body.Append(withNewline);
            }
        }

        documents.Add((separator, body.ToString()));
        return documents;
    }
}
