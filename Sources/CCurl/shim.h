#include <curl/curl.h>

// libcurl is loaded with dlopen (LLM/Curl.swift), so its functions arrive as pointers.
// curl_easy_setopt and curl_easy_getinfo are variadic, which Swift cannot call: these
// wrappers make the variadic calls in C, through the pointer they are given.
typedef CURLcode (*haps_curl_setopt_fn)(CURL *, CURLoption, ...);
typedef CURLcode (*haps_curl_getinfo_fn)(CURL *, CURLINFO, ...);

static inline CURLcode haps_curl_setopt_long(void *fn, CURL *handle, CURLoption option, long value) {
    return ((haps_curl_setopt_fn)fn)(handle, option, value);
}
static inline CURLcode haps_curl_setopt_pointer(void *fn, CURL *handle, CURLoption option, const void *value) {
    return ((haps_curl_setopt_fn)fn)(handle, option, value);
}
static inline CURLcode haps_curl_setopt_offset(void *fn, CURL *handle, CURLoption option, curl_off_t value) {
    return ((haps_curl_setopt_fn)fn)(handle, option, value);
}
static inline CURLcode haps_curl_getinfo_long(void *fn, CURL *handle, CURLINFO info, long *value) {
    return ((haps_curl_getinfo_fn)fn)(handle, info, value);
}
