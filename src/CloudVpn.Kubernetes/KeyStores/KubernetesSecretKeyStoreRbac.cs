using k8s.Models;

namespace CloudVpn.Kubernetes.KeyStores;

/// <summary>
/// The least privilege a <see cref="KubernetesSecretKeyStore"/> needs: one namespaced Role on core <c>secrets</c> with
/// <c>get</c> (read, compare-and-swap), <c>list</c> and <c>watch</c> (watching), <c>create</c> (first version),
/// <c>update</c> (next versions) and <c>delete</c> (deleting a key). No <c>patch</c>, no <c>deletecollection</c>, nothing
/// cluster-wide, no other resource. RBAC cannot narrow <c>create</c> or <c>list</c>/<c>watch</c> by name, so the store
/// adds the label filter itself; a process that only reads keys can use <see cref="ReadOnlyVerbs"/>.
/// </summary>
public static class KubernetesSecretKeyStoreRbac
{
    /// <summary>Verbs of the full store.</summary>
    public static IReadOnlyList<string> Verbs { get; } = ["get", "list", "watch", "create", "update", "delete"];

    /// <summary>Verbs of a store that only reads and watches keys.</summary>
    public static IReadOnlyList<string> ReadOnlyVerbs { get; } = ["get", "list", "watch"];

    /// <summary>The Role for a store in <paramref name="namespace"/>; <paramref name="readOnly"/> drops the write verbs.</summary>
    public static V1Role Role(string name, string @namespace, bool readOnly = false) => RoleWithVerbs(name, @namespace, readOnly ? ReadOnlyVerbs : Verbs);

    /// <summary>
    /// A Role limited to the named key Secrets (see <see cref="KubernetesSecretKeyStore.SecretNameFor"/>), for deployments
    /// that create those Secrets up front: get, list and watch (the store watches one key with a
    /// <c>metadata.name</c> field selector, which RBAC matches against the names) and, unless
    /// <paramref name="readOnly"/>, update. Such a store cannot create or delete keys, nor watch every key at once.
    /// </summary>
    public static V1Role RoleForSecrets(string name, string @namespace, IEnumerable<string> secretNames, bool readOnly = false)
    {
        var names = secretNames.ToList();
        if (names.Count == 0)
        {
            throw new ArgumentException("Name at least one Secret.", nameof(secretNames));
        }

        var role = RoleWithVerbs(name, @namespace, readOnly ? ReadOnlyVerbs : [.. ReadOnlyVerbs, "update"]);
        role.Rules[0].ResourceNames = names;
        return role;
    }

    /// <summary>A Role with exactly <paramref name="verbs"/> on secrets (for tests proving each verb is needed).</summary>
    public static V1Role RoleWithVerbs(string name, string @namespace, IEnumerable<string> verbs) => new()
    {
        ApiVersion = "rbac.authorization.k8s.io/v1",
        Kind = "Role",
        Metadata = new V1ObjectMeta { Name = name, NamespaceProperty = @namespace, Labels = new Dictionary<string, string> { ["app.kubernetes.io/managed-by"] = "cloudvpn" } },
        Rules = [new V1PolicyRule { ApiGroups = [string.Empty], Resources = ["secrets"], Verbs = [.. verbs] }],
    };

    /// <summary>Binds <paramref name="role"/> to a subject (a ServiceAccount in production; a User in tests).</summary>
    public static V1RoleBinding Binding(V1Role role, Rbacv1Subject subject) => new()
    {
        ApiVersion = "rbac.authorization.k8s.io/v1",
        Kind = "RoleBinding",
        Metadata = new V1ObjectMeta { Name = role.Metadata.Name, NamespaceProperty = role.Metadata.NamespaceProperty, Labels = role.Metadata.Labels },
        RoleRef = new V1RoleRef { ApiGroup = "rbac.authorization.k8s.io", Kind = "Role", Name = role.Metadata.Name },
        Subjects = [subject],
    };

    /// <summary>The subject for a ServiceAccount.</summary>
    public static Rbacv1Subject ServiceAccount(string name, string @namespace) => new() { Kind = "ServiceAccount", Name = name, NamespaceProperty = @namespace };
}
