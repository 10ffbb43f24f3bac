using System.Text.RegularExpressions;
using k8s.Models;

namespace CloudVpn.Kubernetes.Tests.Chart;

/// <summary>Security and hygiene checks over every object of a manifest; each failure names the object and field.</summary>
internal static partial class ManifestChecks
{
    public static List<string> Check(IEnumerable<RenderedObject> objects)
    {
        var problems = new List<string>();
        foreach (var o in objects)
        {
            switch (o.Typed)
            {
                case V1Deployment d:
                    CheckPod(o.Key, d.Spec.Template.Spec, longRunning: true, problems);
                    break;
                case V1CronJob c:
                    CheckPod(o.Key, c.Spec.JobTemplate.Spec.Template.Spec, longRunning: false, problems);
                    break;
                case V1ConfigMap cm:
                    foreach (var (k, v) in cm.Data ?? new Dictionary<string, string>())
                    {
                        if (LooksLikeKey(v))
                        {
                            problems.Add($"{o.Key}: data.{k} holds something that looks like key material");
                        }
                    }

                    break;
                case V1Secret s:
                    if (s.Data is { Count: > 0 } || s.StringData is { Count: > 0 })
                    {
                        problems.Add($"{o.Key}: the chart writes key material into a Secret");
                    }

                    break;
                case V1ServiceAccount sa:
                    if (sa.AutomountServiceAccountToken != false)
                    {
                        problems.Add($"{o.Key}: automountServiceAccountToken is not false");
                    }

                    break;
                case V1Role r:
                    foreach (var rule in r.Rules)
                    {
                        if (rule.ResourceNames is not { Count: > 0 } || rule.Resources.Any(x => x != "secrets") || rule.Verbs.Any(v => v is "*" or "create" or "delete" or "deletecollection"))
                        {
                            problems.Add($"{o.Key}: rule grants more than named Secrets ({string.Join(",", rule.Verbs)} on {string.Join(",", rule.Resources)})");
                        }
                    }

                    break;
            }
        }

        return problems;
    }

    private static void CheckPod(string key, V1PodSpec pod, bool longRunning, List<string> problems)
    {
        if (pod.HostNetwork == true || pod.HostPID == true || pod.HostIPC == true)
        {
            problems.Add($"{key}: host namespaces");
        }

        if (pod.Volumes?.Any(v => v.HostPath is not null) == true)
        {
            problems.Add($"{key}: hostPath volume");
        }

        var podSc = pod.SecurityContext;
        foreach (var c in (pod.InitContainers ?? []).Concat(pod.Containers))
        {
            var where = $"{key} container {c.Name}";
            var sc = c.SecurityContext;
            if (sc is null)
            {
                problems.Add($"{where}: no securityContext");
                continue;
            }

            if (sc.Privileged == true)
            {
                problems.Add($"{where}: privileged");
            }

            if ((sc.RunAsNonRoot ?? podSc?.RunAsNonRoot) != true)
            {
                problems.Add($"{where}: not runAsNonRoot");
            }

            if ((sc.RunAsUser ?? podSc?.RunAsUser) == 0)
            {
                problems.Add($"{where}: runAsUser 0");
            }

            if (sc.ReadOnlyRootFilesystem != true)
            {
                problems.Add($"{where}: root file system not read-only");
            }

            if (sc.AllowPrivilegeEscalation != false)
            {
                problems.Add($"{where}: allowPrivilegeEscalation not false");
            }

            if (sc.Capabilities?.Drop?.Contains("ALL") != true)
            {
                problems.Add($"{where}: capabilities do not drop ALL");
            }

            foreach (var cap in sc.Capabilities?.Add ?? [])
            {
                if (cap != "NET_ADMIN")
                {
                    problems.Add($"{where}: adds capability {cap}");
                }
            }

            if ((sc.SeccompProfile?.Type ?? podSc?.SeccompProfile?.Type) != "RuntimeDefault")
            {
                problems.Add($"{where}: seccomp profile not RuntimeDefault");
            }

            if (c.Resources?.Requests is null || c.Resources.Limits is null
                || !c.Resources.Requests.ContainsKey("cpu") || !c.Resources.Requests.ContainsKey("memory")
                || !c.Resources.Limits.ContainsKey("cpu") || !c.Resources.Limits.ContainsKey("memory"))
            {
                problems.Add($"{where}: cpu/memory requests and limits not all set");
            }

            if (longRunning && (c.ReadinessProbe is null || c.LivenessProbe is null || c.StartupProbe is null))
            {
                problems.Add($"{where}: startup, readiness and liveness probes not all present");
            }

            foreach (var env in c.Env ?? [])
            {
                if (env.ValueFrom?.SecretKeyRef is not null || (env.Value is not null && LooksLikeKey(env.Value)))
                {
                    problems.Add($"{where}: environment variable {env.Name} carries a secret");
                }
            }

            if (c.EnvFrom?.Any(e => e.SecretRef is not null) == true)
            {
                problems.Add($"{where}: envFrom a Secret");
            }
        }
    }

    /// <summary>A WireGuard key (32 bytes base64), a PEM private key, or a field named like one with a value.</summary>
    public static bool LooksLikeKey(string value) => KeyPattern().IsMatch(value);

    [GeneratedRegex(@"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=|PRIVATE KEY|(?i:(private_?key|preshared_?key|secret)\s*[:=]\s*\S{8,})", RegexOptions.CultureInvariant)]
    private static partial Regex KeyPattern();
}
