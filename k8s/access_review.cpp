#include "edgecert/k8s/access_review.h"

namespace edgecert::k8s {

AccessAttributes AccessAttributes::of(std::string verb, const ResourceType& rt, std::string ns) {
    AccessAttributes a;
    a.verb = std::move(verb);
    a.group = std::string(rt.group);
    a.resource = std::string(rt.plural);
    a.namespace_ = std::move(ns);
    return a;
}

std::string describe(const AccessAttributes& a) {
    std::string s = a.verb + " " + a.resource;
    if (!a.subresource.empty()) s += "/" + a.subresource;
    if (!a.group.empty()) s += "." + a.group;
    if (!a.name.empty()) s += " " + a.name;
    s += a.namespace_.empty() ? " at the cluster scope" : " in namespace " + a.namespace_;
    return s;
}

Result<bool> can_i(Client& client, const AccessAttributes& a) {
    json attrs = {{"verb", a.verb}, {"group", a.group}, {"resource", a.resource}};
    if (!a.subresource.empty()) attrs["subresource"] = a.subresource;
    if (!a.namespace_.empty()) attrs["namespace"] = a.namespace_;
    if (!a.name.empty()) attrs["name"] = a.name;
    json review = {{"apiVersion", "authorization.k8s.io/v1"},
                   {"kind", "SelfSubjectAccessReview"},
                   {"spec", {{"resourceAttributes", attrs}}}};
    const std::string what = "SelfSubjectAccessReview (" + describe(a) + ")";
    auto r = client.request("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                            review.dump(), "application/json");
    if (!r) return r.error().with_context(what);
    if (r->status != 200 && r->status != 201) return status_error(*r, what);
    try {
        auto j = json::parse(r->body);
        return j.at("status").value("allowed", false);
    } catch (const json::exception& e) {
        return Error(ErrorCode::Transient, what + ": undecodable answer: " + e.what());
    }
}

}  // namespace edgecert::k8s
