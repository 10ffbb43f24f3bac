using k8s;
using k8s.Models;

namespace CloudVpn.Kubernetes.Tests.Injection;

/// <summary>Pod shapes seen in real clusters, as YAML, for the injector tests.</summary>
internal static class PodShapes
{
    public const string Plain = """
        apiVersion: v1
        kind: Pod
        metadata:
          name: app
          namespace: team-a
          annotations:
            cloudvpn.io/inject: "true"
            cloudvpn.io/gateway: vpn-gateway
        spec:
          containers:
          - name: app
            image: registry.example/app:1.2
            ports:
            - containerPort: 8080
        """;

    public const string WithInitContainersVolumesAndSecurity = """
        apiVersion: v1
        kind: Pod
        metadata:
          name: busy
          labels:
            app: busy
          annotations:
            cloudvpn.io/inject: "true"
            cloudvpn.io/gateway: edge
            cloudvpn.io/secret: edge-client-busy
            cloudvpn.io/routes: 10.20.0.0/16, 172.16.5.0/24
            traffic.sidecar.istio.io/excludeOutboundIPRanges: 169.254.169.254/32
            config.linkerd.io/skip-outbound-ports: "25"
        spec:
          securityContext:
            runAsNonRoot: true
            fsGroup: 2000
          initContainers:
          - name: migrate
            image: registry.example/migrate:3
          - name: log-shipper
            image: registry.example/shipper:1
            restartPolicy: Always
          containers:
          - name: app
            image: registry.example/app:1.2
            volumeMounts:
            - name: data
              mountPath: /data
          - name: metrics
            image: registry.example/exporter:0.9
          volumes:
          - name: data
            emptyDir: {}
        """;

    public const string OptedOut = """
        apiVersion: v1
        kind: Pod
        metadata:
          name: quiet
          annotations:
            cloudvpn.io/inject: "false"
            cloudvpn.io/gateway: vpn-gateway
        spec:
          containers:
          - name: app
            image: registry.example/app:1.2
        """;

    public const string NoAnnotations = """
        apiVersion: v1
        kind: Pod
        metadata:
          name: bare
        spec:
          containers:
          - name: app
            image: registry.example/app:1.2
        """;

    public const string MissingGateway = """
        apiVersion: v1
        kind: Pod
        metadata:
          name: lost
          annotations:
            cloudvpn.io/inject: "true"
        spec:
          containers:
          - name: app
            image: registry.example/app:1.2
        """;

    public static V1Pod Load(string yaml) => KubernetesYaml.Deserialize<V1Pod>(yaml, strict: true);
}
