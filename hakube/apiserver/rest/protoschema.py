"""Field numbers of the Kubernetes protobuf messages hakube reads, as JSON names and types.

The numbers are those of Kubernetes' published ``generated.proto`` files (k8s.io/api core,
apps, batch, scheduling, authentication and rbac v1; k8s.io/apimachinery meta v1, intstr,
resource). Only the messages ``kubectl create <generator>`` sends are here (deployment,
configmap, secret, service, namespace, job, cronjob, serviceaccount, priorityclass, role,
clusterrole, rolebinding, clusterrolebinding, token), each with the fields hakube serves;
``k8sproto.decode`` refuses a body that sets any other field rather than dropping it.

A field is ``number: (json name, type)``. Types:

=========  =====================================================================
``s``      string                 ``y``   bytes, as base64 (Secret data)
``i``      integer; 0 is "unset"  ``i!``  integer that may be 0 (a pointer in Go)
``b``      bool; false is unset   ``b!``  bool that may be false (a pointer in Go)
``t``      meta.v1 Time           ``io``  intstr.IntOrString
``*s``     repeated string        ``x``   ignored: a create resets it (status)
``{s}``    map<string, string>    ``{y}`` map<string, bytes>
``{q}``    map<string, Quantity>  ``Name`` / ``*Name``: a message (repeated)
``^Name``  a message embedded in its parent's JSON object (Go's inline struct)
=========  =====================================================================
"""

from __future__ import annotations

Fields = dict[int, tuple[str, str]]

_META = {1: ("metadata", "ObjectMeta")}
_STATUS = {3: ("status", "x")}
_LOCAL_REF = {1: ("", "^LocalObjectReference")}

MESSAGES: dict[str, Fields] = {
    # k8s.io/apimachinery
    "ObjectMeta": {
        1: ("name", "s"),
        2: ("generateName", "s"),
        3: ("namespace", "s"),
        5: ("uid", "s"),
        6: ("resourceVersion", "s"),
        7: ("generation", "i"),
        8: ("creationTimestamp", "t"),
        11: ("labels", "{s}"),
        12: ("annotations", "{s}"),
        13: ("ownerReferences", "*OwnerReference"),
        14: ("finalizers", "*s"),
    },
    "OwnerReference": {
        5: ("apiVersion", "s"),
        1: ("kind", "s"),
        3: ("name", "s"),
        4: ("uid", "s"),
        6: ("controller", "b!"),
        7: ("blockOwnerDeletion", "b!"),
    },
    "LabelSelector": {1: ("matchLabels", "{s}"), 2: ("matchExpressions", "*Requirement")},
    "Requirement": {1: ("key", "s"), 2: ("operator", "s"), 3: ("values", "*s")},
    # core/v1
    "Pod": {**_META, 2: ("spec", "PodSpec"), **_STATUS},
    "PodTemplateSpec": {**_META, 2: ("spec", "PodSpec")},
    "PodSpec": {
        1: ("volumes", "*Volume"),
        20: ("initContainers", "*Container"),
        2: ("containers", "*Container"),
        3: ("restartPolicy", "s"),
        4: ("terminationGracePeriodSeconds", "i!"),
        5: ("activeDeadlineSeconds", "i!"),
        6: ("dnsPolicy", "s"),
        7: ("nodeSelector", "{s}"),
        8: ("serviceAccountName", "s"),
        21: ("automountServiceAccountToken", "b!"),
        10: ("nodeName", "s"),
        11: ("hostNetwork", "b"),
        15: ("imagePullSecrets", "*LocalObjectReference"),
        16: ("hostname", "s"),
        17: ("subdomain", "s"),
        19: ("schedulerName", "s"),
        24: ("priorityClassName", "s"),
    },
    "Volume": {1: ("name", "s")},
    "Container": {
        1: ("name", "s"),
        2: ("image", "s"),
        3: ("command", "*s"),
        4: ("args", "*s"),
        5: ("workingDir", "s"),
        6: ("ports", "*ContainerPort"),
        19: ("envFrom", "*EnvFromSource"),
        7: ("env", "*EnvVar"),
        8: ("resources", "ResourceRequirements"),
        9: ("volumeMounts", "*VolumeMount"),
        13: ("terminationMessagePath", "s"),
        20: ("terminationMessagePolicy", "s"),
        14: ("imagePullPolicy", "s"),
        16: ("stdin", "b"),
        17: ("stdinOnce", "b"),
        18: ("tty", "b"),
    },
    "ContainerPort": {
        1: ("name", "s"),
        2: ("hostPort", "i"),
        3: ("containerPort", "i"),
        4: ("protocol", "s"),
        5: ("hostIP", "s"),
    },
    "EnvVar": {1: ("name", "s"), 2: ("value", "s"), 3: ("valueFrom", "EnvVarSource")},
    "EnvVarSource": {
        1: ("fieldRef", "ObjectFieldSelector"),
        3: ("configMapKeyRef", "KeySelector"),
        4: ("secretKeyRef", "KeySelector"),
    },
    "ObjectFieldSelector": {1: ("apiVersion", "s"), 2: ("fieldPath", "s")},
    "KeySelector": {**_LOCAL_REF, 2: ("key", "s"), 3: ("optional", "b!")},
    "EnvFromSource": {
        1: ("prefix", "s"),
        2: ("configMapRef", "EnvSource"),
        3: ("secretRef", "EnvSource"),
    },
    "EnvSource": {**_LOCAL_REF, 2: ("optional", "b!")},
    "LocalObjectReference": {1: ("name", "s")},
    "ResourceRequirements": {1: ("limits", "{q}"), 2: ("requests", "{q}")},
    "VolumeMount": {
        1: ("name", "s"),
        2: ("readOnly", "b"),
        3: ("mountPath", "s"),
        4: ("subPath", "s"),
    },
    "ConfigMap": {**_META, 4: ("immutable", "b!"), 2: ("data", "{s}"), 3: ("binaryData", "{y}")},
    "Secret": {
        **_META,
        5: ("immutable", "b!"),
        2: ("data", "{y}"),
        4: ("stringData", "{s}"),
        3: ("type", "s"),
    },
    "Namespace": {**_META, 2: ("spec", "NamespaceSpec"), **_STATUS},
    "NamespaceSpec": {1: ("finalizers", "*s")},
    "Service": {**_META, 2: ("spec", "ServiceSpec"), **_STATUS},
    "ServiceSpec": {
        1: ("ports", "*ServicePort"),
        2: ("selector", "{s}"),
        3: ("clusterIP", "s"),
        18: ("clusterIPs", "*s"),
        4: ("type", "s"),
        5: ("externalIPs", "*s"),
        7: ("sessionAffinity", "s"),
        10: ("externalName", "s"),
        11: ("externalTrafficPolicy", "s"),
        13: ("publishNotReadyAddresses", "b"),
        19: ("ipFamilies", "*s"),
        17: ("ipFamilyPolicy", "s"),
        22: ("internalTrafficPolicy", "s"),
    },
    "ServicePort": {
        1: ("name", "s"),
        2: ("protocol", "s"),
        6: ("appProtocol", "s"),
        3: ("port", "i"),
        4: ("targetPort", "io"),
        5: ("nodePort", "i"),
    },
    "ServiceAccount": {
        **_META,
        3: ("imagePullSecrets", "*LocalObjectReference"),
        4: ("automountServiceAccountToken", "b!"),
    },
    # apps/v1
    "Deployment": {**_META, 2: ("spec", "DeploymentSpec"), **_STATUS},
    "DeploymentSpec": {
        1: ("replicas", "i!"),
        2: ("selector", "LabelSelector"),
        3: ("template", "PodTemplateSpec"),
        4: ("strategy", "DeploymentStrategy"),
        5: ("minReadySeconds", "i"),
        6: ("revisionHistoryLimit", "i!"),
        7: ("paused", "b"),
        9: ("progressDeadlineSeconds", "i!"),
    },
    "DeploymentStrategy": {1: ("type", "s")},
    # batch/v1
    "Job": {**_META, 2: ("spec", "JobSpec"), **_STATUS},
    "JobSpec": {
        1: ("parallelism", "i!"),
        2: ("completions", "i!"),
        3: ("activeDeadlineSeconds", "i!"),
        7: ("backoffLimit", "i!"),
        4: ("selector", "LabelSelector"),
        5: ("manualSelector", "b!"),
        6: ("template", "PodTemplateSpec"),
        8: ("ttlSecondsAfterFinished", "i!"),
        9: ("completionMode", "s"),
        10: ("suspend", "b!"),
    },
    "CronJob": {**_META, 2: ("spec", "CronJobSpec"), **_STATUS},
    "CronJobSpec": {
        1: ("schedule", "s"),
        8: ("timeZone", "s"),
        2: ("startingDeadlineSeconds", "i!"),
        3: ("concurrencyPolicy", "s"),
        4: ("suspend", "b!"),
        5: ("jobTemplate", "JobTemplateSpec"),
        6: ("successfulJobsHistoryLimit", "i!"),
        7: ("failedJobsHistoryLimit", "i!"),
    },
    "JobTemplateSpec": {**_META, 2: ("spec", "JobSpec")},
    # scheduling.k8s.io/v1
    "PriorityClass": {
        **_META,
        2: ("value", "i!"),
        3: ("globalDefault", "b"),
        4: ("description", "s"),
        5: ("preemptionPolicy", "s"),
    },
    # authentication.k8s.io/v1 (``kubectl create token``)
    "TokenRequest": {**_META, 2: ("spec", "TokenRequestSpec"), **_STATUS},
    "TokenRequestSpec": {
        1: ("audiences", "*s"),
        4: ("expirationSeconds", "i!"),
        3: ("boundObjectRef", "BoundObjectReference"),
    },
    "BoundObjectReference": {
        1: ("kind", "s"),
        2: ("apiVersion", "s"),
        3: ("name", "s"),
        4: ("uid", "s"),
    },
    # rbac.authorization.k8s.io/v1
    "Role": {**_META, 2: ("rules", "*PolicyRule")},
    "ClusterRole": {**_META, 2: ("rules", "*PolicyRule")},
    "PolicyRule": {
        1: ("verbs", "*s"),
        2: ("apiGroups", "*s"),
        3: ("resources", "*s"),
        4: ("resourceNames", "*s"),
        5: ("nonResourceURLs", "*s"),
    },
    "RoleBinding": {**_META, 2: ("subjects", "*Subject"), 3: ("roleRef", "RoleRef")},
    "ClusterRoleBinding": {**_META, 2: ("subjects", "*Subject"), 3: ("roleRef", "RoleRef")},
    "Subject": {1: ("kind", "s"), 2: ("apiGroup", "s"), 3: ("name", "s"), 4: ("namespace", "s")},
    "RoleRef": {1: ("apiGroup", "s"), 2: ("kind", "s"), 3: ("name", "s")},
}
"""Message name -> its fields (the name is Kubernetes' own where one is shared, e.g.
``KeySelector`` for ConfigMapKeySelector and SecretKeySelector, whose fields agree)."""

OBJECTS = {
    "Pod",
    "ConfigMap",
    "Secret",
    "Namespace",
    "Service",
    "ServiceAccount",
    "Deployment",
    "Job",
    "CronJob",
    "PriorityClass",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
    "TokenRequest",
}
"""Kinds whose protobuf body is read (the top-level messages above)."""
