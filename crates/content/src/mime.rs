//! The content-type table: file extension → media type, as mod_mime's
//! `TypesConfig` (Debian's `/etc/mime.types`) plus `AddType`/`RemoveType`.
//!
//! The built-in table is Debian's `/etc/mime.types` (package media-types
//! 10.0.0), which is what Apache on Debian reads at start-up.  It is parsed
//! once per process and shared; a [`MimeTable`] keeps its own changes in a
//! small overlay so cloning one per directory stays cheap.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

type Map = HashMap<Box<str>, Box<str>>;

/// Extension (lower case, no dot) → content type.
#[derive(Clone, Debug)]
pub struct MimeTable {
    /// The shared, immutable base table.
    base: Arc<Map>,
    /// Changes made on this table: `Some` adds or replaces, `None` removes.
    overlay: HashMap<Box<str>, Option<Box<str>>>,
}

/// Normalises an extension as mod_mime does for `AddType` and lookups:
/// one leading dot is dropped and ASCII letters are lower-cased.
fn normalise(ext: &str) -> std::borrow::Cow<'_, str> {
    let ext = ext.strip_prefix('.').unwrap_or(ext);
    if ext.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(ext.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(ext)
    }
}

/// Parses `mime.types` text: `type ext ext ...` per line, `#` comments.
/// Like mod_mime, a later line wins when an extension appears twice.
fn parse_mime_types(text: &str) -> Map {
    let mut map = Map::new();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let mut words = line.split_ascii_whitespace();
        let Some(ctype) = words.next() else {
            continue;
        };
        for ext in words {
            map.insert(normalise(ext).into_owned().into_boxed_str(), ctype.into());
        }
    }
    map
}

/// `../shared/conformance/oracle`'s `MIME_TYPES`.
const REFERENCE_MIME_TYPES: &str = "\
text/html html htm
text/plain txt
text/css css
text/javascript js mjs
application/json json
application/xml xml
image/svg+xml svg
image/png png
image/jpeg jpg jpeg
image/gif gif
image/webp webp
image/vnd.microsoft.icon ico
application/pdf pdf
application/zip zip
font/woff woff
font/woff2 woff2
";

impl MimeTable {
    /// The built-in table (Debian's `/etc/mime.types`).
    pub fn builtin() -> MimeTable {
        static BASE: OnceLock<Arc<Map>> = OnceLock::new();
        let base = BASE.get_or_init(|| Arc::new(parse_mime_types(DEBIAN_MIME_TYPES)));
        MimeTable {
            base: Arc::clone(base),
            overlay: HashMap::new(),
        }
    }

    /// The conformance oracle's fixed table (its generated `mime.types`):
    /// what the recorded Apache answers were made with.
    pub fn reference() -> MimeTable {
        MimeTable::from_mime_types(REFERENCE_MIME_TYPES)
    }

    /// A table with no mappings at all.
    pub fn empty() -> MimeTable {
        MimeTable {
            base: Arc::new(Map::new()),
            overlay: HashMap::new(),
        }
    }

    /// A table read from the text of a `mime.types` file (`TypesConfig`).
    pub fn from_mime_types(text: &str) -> MimeTable {
        MimeTable {
            base: Arc::new(parse_mime_types(text)),
            overlay: HashMap::new(),
        }
    }

    /// The content type for one extension (case-insensitive, a leading dot
    /// is allowed).
    pub fn lookup(&self, ext: &str) -> Option<&str> {
        let ext = normalise(ext);
        match self.overlay.get(ext.as_ref()) {
            Some(Some(ctype)) => Some(ctype),
            Some(None) => None,
            None => self.base.get(ext.as_ref()).map(|c| &**c),
        }
    }

    /// Maps `ext` to `ctype` (`AddType ctype ext`).
    pub fn insert(&mut self, ext: &str, ctype: &str) {
        let ext = normalise(ext).into_owned().into_boxed_str();
        self.overlay.insert(ext, Some(ctype.into()));
    }

    /// Forgets the mapping of `ext` (`RemoveType ext`).
    pub fn remove(&mut self, ext: &str) {
        let ext = normalise(ext).into_owned().into_boxed_str();
        if self.base.contains_key(&ext) {
            self.overlay.insert(ext, None);
        } else {
            self.overlay.remove(&ext);
        }
    }

    /// The content type mod_mime gives a file name: the path up to the last
    /// `/` is dropped, the first dot-separated component is the base name,
    /// and every later non-empty component is looked up in order, a later
    /// known one overriding an earlier one (`a.html.en` → `text/html`,
    /// `a.tar.gz` → the `gz` type, `.png` → `image/png` as in 2.4).
    pub fn type_for_file_name(&self, file_name: &str) -> Option<&str> {
        let name = match file_name.rfind('/') {
            Some(i) => &file_name[i + 1..],
            None => file_name,
        };
        let mut found = None;
        for ext in name.split('.').skip(1) {
            if ext.is_empty() {
                continue;
            }
            if let Some(ctype) = self.lookup(ext) {
                found = Some(ctype);
            }
        }
        found
    }
}

impl Default for MimeTable {
    fn default() -> Self {
        MimeTable::builtin()
    }
}

/// Debian's `/etc/mime.types` (media-types 10.0.0), comment lines and
/// extension-less types left out; one `type ext...` per line.
const DEBIAN_MIME_TYPES: &str = "\
application/A2L a2l\n\
application/AML aml\n\
application/andrew-inset ez\n\
application/annodex anx\n\
application/ATF atf\n\
application/ATFX atfx\n\
application/atom+xml atom\n\
application/atomcat+xml atomcat\n\
application/atomdeleted+xml atomdeleted\n\
application/atomserv+xml atomsrv\n\
application/atomsvc+xml atomsvc\n\
application/atsc-dwd+xml dwd\n\
application/atsc-held+xml held\n\
application/atsc-rsat+xml rsat\n\
application/ATXML atxml\n\
application/auth-policy+xml apxml\n\
application/automationml-amlx+zip amlx\n\
application/bacnet-xdd+zip xdd\n\
application/bbolin lin\n\
application/calendar+xml xcs\n\
application/cbor cbor\n\
application/cccex c3ex\n\
application/ccmp+xml ccmp\n\
application/ccxml+xml ccxml\n\
application/CDFX+XML cdfx\n\
application/cdmi-capability cdmia\n\
application/cdmi-container cdmic\n\
application/cdmi-domain cdmid\n\
application/cdmi-object cdmio\n\
application/cdmi-queue cdmiq\n\
application/CEA cea\n\
application/cellml+xml cellml cml\n\
application/clr 1clr\n\
application/clue_info+xml clue\n\
application/cms cmsc\n\
application/cpl+xml cpl\n\
application/csrattrs csrattrs\n\
application/cu-seeme cu\n\
application/cwl cwl\n\
application/cwl+json cwl.json\n\
application/dash+xml mpd\n\
application/dashdelta mpdd\n\
application/davmount+xml davmount\n\
application/DCD dcd\n\
application/dicom dcm\n\
application/DII dii\n\
application/DIT dit\n\
application/dskpp+xml xmls\n\
application/dsptype tsp\n\
application/dssc+der dssc\n\
application/dssc+xml xdssc\n\
application/dvcs dvc\n\
application/efi efi\n\
application/emma+xml emma\n\
application/emotionml+xml emotionml\n\
application/epub+zip epub\n\
application/exi exi\n\
application/express exp\n\
application/fastinfoset finf\n\
application/fdf fdf\n\
application/fdt+xml fdt\n\
application/font-tdpfr pfr\n\
application/futuresplash spl\n\
application/geo+json geojson\n\
application/geopackage+sqlite3 gpkg\n\
application/gltf-buffer glbin glbuf\n\
application/gml+xml gml\n\
application/gzip gz\n\
application/hta hta\n\
application/hyperstudio stk\n\
application/inkml+xml ink inkml\n\
application/ipfix ipfix\n\
application/its+xml its\n\
application/java-archive jar\n\
application/java-serialized-object ser\n\
application/java-vm class\n\
application/jrd+json jrd\n\
application/json json\n\
application/json-patch+json json-patch\n\
application/ld+json jsonld\n\
application/lgr+xml lgr\n\
application/link-format wlnk\n\
application/lost+xml lostxml\n\
application/lostsync+xml lostsyncxml\n\
application/lpf+zip lpf\n\
application/LXF lxf\n\
application/m3g m3g\n\
application/mac-binhex40 hqx\n\
application/mac-compactpro cpt\n\
application/mads+xml mads\n\
application/manifest+json webmanifest\n\
application/marc mrc\n\
application/marcxml+xml mrcx\n\
application/mathematica ma mb\n\
application/mathml+xml mml\n\
application/mbox mbox\n\
application/metalink4+xml meta4\n\
application/mets+xml mets\n\
application/MF4 mf4\n\
application/mmt-aei+xml maei\n\
application/mmt-usd+xml musd\n\
application/mods+xml mods\n\
application/mp21 m21 mp21\n\
application/msaccess mdb\n\
application/msword doc\n\
application/mxf mxf\n\
application/n-quads nq\n\
application/n-triples nt\n\
application/ocsp-request orq\n\
application/ocsp-response ors\n\
application/octet-stream bin deploy msu msp\n\
application/ODA oda\n\
application/ODX odx\n\
application/oebps-package+xml opf\n\
application/ogg ogx\n\
application/onenote one onetoc2 onetmp onepkg\n\
application/oxps oxps\n\
application/p21 p21 stpnc 210 ifc\n\
application/p2p-overlay+xml relo\n\
application/pdf pdf\n\
application/PDX pdx\n\
application/pem-certificate-chain pem\n\
application/pgp-encrypted pgp\n\
application/pgp-keys asc key\n\
application/pgp-signature sig\n\
application/pics-rules prf\n\
application/pkcs10 p10\n\
application/pkcs12 p12 pfx\n\
application/pkcs7-mime p7m p7c p7z\n\
application/pkcs7-signature p7s\n\
application/pkcs8 p8\n\
application/pkcs8-encrypted p8e\n\
application/pkix-attr-cert ac\n\
application/pkix-cert cer\n\
application/pkix-crl crl\n\
application/pkix-pkipath pkipath\n\
application/pkixcmp pki\n\
application/postscript ps ai eps epsi epsf eps2 eps3\n\
application/provenance+xml provx\n\
application/prs.cww cw cww\n\
application/prs.hpub+zip hpub\n\
application/prs.nprend rnd rct\n\
application/prs.rdf-xml-crypt rdf-crypt\n\
application/prs.xsf+xml xsf\n\
application/pskc+xml pskcxml\n\
application/rdf+xml rdf\n\
application/reginfo+xml rif\n\
application/relax-ng-compact-syntax rnc\n\
application/resource-lists+xml rl\n\
application/resource-lists-diff+xml rld\n\
application/rfc+xml rfcxml\n\
application/rls-services+xml rs\n\
application/route-apd+xml rapd\n\
application/route-s-tsid+xml sls\n\
application/route-usd+xml rusd\n\
application/rpki-ghostbusters gbr\n\
application/rpki-manifest mft\n\
application/rpki-roa roa\n\
application/rtf rtf\n\
application/sarif+json sarif sarif.json\n\
application/sarif-external-properties+json sarif-external-properties sarif-external-properties.json\n\
application/scim+json scim\n\
application/scvp-cv-request scq\n\
application/scvp-cv-response scs\n\
application/scvp-vp-request spq\n\
application/scvp-vp-response spp\n\
application/sdp sdp\n\
application/senml+cbor senmlc\n\
application/senml+json senml\n\
application/senml+xml senmlx\n\
application/senml-etch+cbor senml-etchc\n\
application/senml-etch+json senml-etchj\n\
application/senml-exi senmle\n\
application/sensml+cbor sensmlc\n\
application/sensml+json sensml\n\
application/sensml+xml sensmlx\n\
application/sensml-exi sensmle\n\
application/sgml-open-catalog soc\n\
application/shf+xml shf\n\
application/sieve siv sieve\n\
application/simple-filter+xml cl\n\
application/smil+xml smil smi sml\n\
application/sparql-query rq\n\
application/sparql-results+xml srx\n\
application/spdx+json spdx.json\n\
application/sql sql\n\
application/srgs gram\n\
application/srgs+xml grxml\n\
application/sru+xml sru\n\
application/ssml+xml ssml\n\
application/stix+json stix\n\
application/swid+cbor coswid\n\
application/swid+xml swidtag\n\
application/tamp-apex-update tau\n\
application/tamp-apex-update-confirm auc\n\
application/tamp-community-update tcu\n\
application/tamp-community-update-confirm cuc\n\
application/tamp-error ter\n\
application/tamp-sequence-adjust tsa\n\
application/tamp-sequence-adjust-confirm sac\n\
application/tamp-update tur\n\
application/tamp-update-confirm tuc\n\
application/td+json jsontd\n\
application/tei+xml tei teiCorpus odd\n\
application/thraud+xml tfi\n\
application/timestamp-query tsq\n\
application/timestamp-reply tsr\n\
application/timestamped-data tsd\n\
application/tm+json tm.jsonld tm.json jsontm\n\
application/trig trig\n\
application/ttml+xml ttml\n\
application/urc-grpsheet+xml gsheet\n\
application/urc-ressheet+xml rsheet\n\
application/urc-targetdesc+xml td\n\
application/urc-uisocketdesc+xml uis\n\
application/vnd.1000minds.decision-model+xml 1km\n\
application/vnd.3gpp.pic-bw-large plb\n\
application/vnd.3gpp.pic-bw-small psb\n\
application/vnd.3gpp.pic-bw-var pvb\n\
application/vnd.3gpp2.sms sms\n\
application/vnd.3gpp2.tcap tcap\n\
application/vnd.3lightssoftware.imagescal imgcal\n\
application/vnd.3M.Post-it-Notes pwn\n\
application/vnd.accpac.simply.aso aso\n\
application/vnd.accpac.simply.imp imp\n\
application/vnd.acucobol acu\n\
application/vnd.acucorp atc acutc\n\
application/vnd.adobe.flash.movie swf\n\
application/vnd.adobe.formscentral.fcdt fcdt\n\
application/vnd.adobe.fxp fxp fxpl\n\
application/vnd.adobe.xdp+xml xdp\n\
application/vnd.afpc.modca list3820 listafp afp pseg3820\n\
application/vnd.afpc.modca-overlay ovl\n\
application/vnd.afpc.modca-pagesegment psg\n\
application/vnd.age age\n\
application/vnd.ahead.space ahead\n\
application/vnd.airzip.filesecure.azf azf\n\
application/vnd.airzip.filesecure.azs azs\n\
application/vnd.amazon.mobi8-ebook azw3\n\
application/vnd.americandynamics.acc acc\n\
application/vnd.amiga.ami ami\n\
application/vnd.android.ota ota\n\
application/vnd.android.package-archive apk\n\
application/vnd.anki apkg\n\
application/vnd.anser-web-certificate-issue-initiation cii\n\
application/vnd.anser-web-funds-transfer-initiation fti\n\
application/vnd.apache.arrow.file arrow\n\
application/vnd.apache.arrow.stream arrows\n\
application/vnd.apexlang apexlang apex\n\
application/vnd.apple.installer+xml dist distz pkg mpkg\n\
application/vnd.apple.keynote keynote\n\
application/vnd.apple.mpegurl m3u8\n\
application/vnd.apple.numbers numbers\n\
application/vnd.apple.pages pages\n\
application/vnd.aristanetworks.swi swi\n\
application/vnd.artisan+json artisan\n\
application/vnd.astraea-software.iota iota\n\
application/vnd.audiograph aep\n\
application/vnd.autopackage package\n\
application/vnd.balsamiq.bmml+xml bmml\n\
application/vnd.balsamiq.bmpr bmpr\n\
application/vnd.banana-accounting ac2\n\
application/vnd.belightsoft.lhzd+zip lhzd\n\
application/vnd.belightsoft.lhzl+zip lhzl\n\
application/vnd.blueice.multipass mpm\n\
application/vnd.bluetooth.ep.oob ep\n\
application/vnd.bluetooth.le.oob le\n\
application/vnd.bmi bmi\n\
application/vnd.businessobjects rep\n\
application/vnd.cendio.thinlinc.clientconf tlclient\n\
application/vnd.chemdraw+xml cdxml\n\
application/vnd.chess-pgn pgn\n\
application/vnd.chipnuts.karaoke-mmd mmd\n\
application/vnd.cinderella cdy\n\
application/vnd.citationstyles.style+xml csl\n\
application/vnd.claymore cla\n\
application/vnd.cloanto.rp9 rp9\n\
application/vnd.clonk.c4group c4g c4d c4f c4p c4u\n\
application/vnd.cluetrust.cartomobile-config c11amc\n\
application/vnd.cluetrust.cartomobile-config-pkg c11amz\n\
application/vnd.coffeescript coffee\n\
application/vnd.collabio.xodocuments.document xodt\n\
application/vnd.collabio.xodocuments.document-template xott\n\
application/vnd.collabio.xodocuments.presentation xodp\n\
application/vnd.collabio.xodocuments.presentation-template xotp\n\
application/vnd.collabio.xodocuments.spreadsheet xods\n\
application/vnd.collabio.xodocuments.spreadsheet-template xots\n\
application/vnd.comicbook+zip cbz\n\
application/vnd.comicbook-rar cbr\n\
application/vnd.commerce-battelle icf icd ic0 ic1 ic2 ic3 ic4 ic5 ic6 ic7 ic8\n\
application/vnd.commonspace csp cst\n\
application/vnd.contact.cmsg cdbcmsg\n\
application/vnd.coreos.ignition+json ign ignition\n\
application/vnd.cosmocaller cmc\n\
application/vnd.crick.clicker clkx\n\
application/vnd.crick.clicker.keyboard clkk\n\
application/vnd.crick.clicker.palette clkp\n\
application/vnd.crick.clicker.template clkt\n\
application/vnd.crick.clicker.wordbank clkw\n\
application/vnd.criticaltools.wbs+xml wbs\n\
application/vnd.crypto-shade-file ssvc\n\
application/vnd.cryptomator.encrypted c9r c9s\n\
application/vnd.cryptomator.vault cryptomator\n\
application/vnd.ctc-posml pml\n\
application/vnd.cups-ppd ppd\n\
application/vnd.dart dart\n\
application/vnd.data-vision.rdz rdz\n\
application/vnd.datalog dl\n\
application/vnd.dbf dbf\n\
application/vnd.debian.binary-package deb ddeb udeb\n\
application/vnd.dece.data uvf uvvf uvd uvvd\n\
application/vnd.dece.ttml+xml uvt uvvt\n\
application/vnd.dece.unspecified uvx uvvx\n\
application/vnd.dece.zip uvz uvvz\n\
application/vnd.denovo.fcselayout-link fe_launch\n\
application/vnd.desmume.movie dsm\n\
application/vnd.dna dna\n\
application/vnd.document+json docjson\n\
application/vnd.doremir.scorecloud-binary-document scld\n\
application/vnd.dpgraph dpg mwc dpgraph\n\
application/vnd.dreamfactory dfac\n\
application/vnd.dtg.local.flash fla\n\
application/vnd.dvb.ait ait\n\
application/vnd.dvb.service svc\n\
application/vnd.dynageo geo\n\
application/vnd.dzr dzr\n\
application/vnd.ecowin.chart mag\n\
application/vnd.eln+zip ELN\n\
application/vnd.enliven nml\n\
application/vnd.epson.esf esf\n\
application/vnd.epson.msf msf\n\
application/vnd.epson.quickanime qam\n\
application/vnd.epson.salt slt\n\
application/vnd.epson.ssf ssf\n\
application/vnd.ericsson.quickcall qcall qca\n\
application/vnd.espass-espass+zip espass\n\
application/vnd.eszigno3+xml es3 et3\n\
application/vnd.etsi.asic-e+zip asice sce\n\
application/vnd.etsi.asic-s+zip asics\n\
application/vnd.etsi.timestamp-token tst\n\
application/vnd.eu.kasparian.car+json carjson\n\
application/vnd.evolv.ecig.profile ecigprofile\n\
application/vnd.evolv.ecig.settings ecig\n\
application/vnd.evolv.ecig.theme ecigtheme\n\
application/vnd.exstream-empower+zip mpw\n\
application/vnd.exstream-package pub\n\
application/vnd.ezpix-album ez2\n\
application/vnd.ezpix-package ez3\n\
application/vnd.familysearch.gedcom+zip gdz\n\
application/vnd.fastcopy-disk-image dim\n\
application/vnd.fdsn.mseed msd mseed\n\
application/vnd.fdsn.seed seed dataless\n\
application/vnd.ficlab.flb+zip flb\n\
application/vnd.filmit.zfc zfc\n\
application/vnd.FloGraphIt gph\n\
application/vnd.fluxtime.clip ftc\n\
application/vnd.font-fontforge-sfd sfd\n\
application/vnd.framemaker fm\n\
application/vnd.fsc.weblaunch fsc\n\
application/vnd.fujitsu.oasys oas\n\
application/vnd.fujitsu.oasys2 oa2\n\
application/vnd.fujitsu.oasys3 oa3\n\
application/vnd.fujitsu.oasysgp fg5\n\
application/vnd.fujitsu.oasysprs bh2\n\
application/vnd.fujixerox.ddd ddd\n\
application/vnd.fujixerox.docuworks xdw\n\
application/vnd.fujixerox.docuworks.binder xbd\n\
application/vnd.fujixerox.docuworks.container xct\n\
application/vnd.fuzzysheet fzs\n\
application/vnd.genomatix.tuxedo txd\n\
application/vnd.genozip genozip\n\
application/vnd.gentics.grd+json grd\n\
application/vnd.gentoo.ebuild ebuild\n\
application/vnd.gentoo.eclass eclass\n\
application/vnd.gentoo.gpkg gpkg.tar\n\
application/vnd.gentoo.xpak xpak\n\
application/vnd.geogebra.file ggb\n\
application/vnd.geogebra.slides ggs\n\
application/vnd.geogebra.tool ggt\n\
application/vnd.geometry-explorer gex gre\n\
application/vnd.geonext gxt\n\
application/vnd.geoplan g2w\n\
application/vnd.geospace g3w\n\
application/vnd.google-earth.kml+xml kml\n\
application/vnd.google-earth.kmz kmz\n\
application/vnd.grafeq gqf gqs\n\
application/vnd.groove-account gac\n\
application/vnd.groove-help ghf\n\
application/vnd.groove-identity-message gim\n\
application/vnd.groove-injector grv\n\
application/vnd.groove-tool-message gtm\n\
application/vnd.groove-tool-template tpl\n\
application/vnd.groove-vcard vcg\n\
application/vnd.hal+xml hal\n\
application/vnd.HandHeld-Entertainment+xml zmm\n\
application/vnd.hbci hbci hbc kom upa pkd bpd\n\
application/vnd.hdt hdt\n\
application/vnd.hhe.lesson-player les\n\
application/vnd.hp-HPGL hpgl\n\
application/vnd.hp-hpid hpi hpid\n\
application/vnd.hp-hps hps\n\
application/vnd.hp-jlyt jlt\n\
application/vnd.hp-PCL pcl\n\
application/vnd.hydrostatix.sof-data sfd-hdstx\n\
application/vnd.ibm.electronic-media emm\n\
application/vnd.ibm.MiniPay mpy\n\
application/vnd.ibm.rights-management irm\n\
application/vnd.ibm.secure-container sc\n\
application/vnd.iccprofile icc icm\n\
application/vnd.ieee.1905 1905.1\n\
application/vnd.igloader igl\n\
application/vnd.imagemeter.folder+zip imf\n\
application/vnd.imagemeter.image+zip imi\n\
application/vnd.immervision-ivp ivp\n\
application/vnd.immervision-ivu ivu\n\
application/vnd.ims.imsccv1p1 imscc\n\
application/vnd.insors.igm igm\n\
application/vnd.intercon.formnet xpw xpx\n\
application/vnd.intergeo i2g\n\
application/vnd.intu.qbo qbo\n\
application/vnd.intu.qfx qfx\n\
application/vnd.ipld.car car\n\
application/vnd.ipunplugged.rcprofile rcprofile\n\
application/vnd.irepository.package+xml irp\n\
application/vnd.is-xpr xpr\n\
application/vnd.isac.fcs fcs\n\
application/vnd.jam jam\n\
application/vnd.jcp.javame.midlet-rms rms\n\
application/vnd.jisp jisp\n\
application/vnd.joost.joda-archive joda\n\
application/vnd.kahootz ktz ktr\n\
application/vnd.kde.karbon karbon\n\
application/vnd.kde.kchart chrt\n\
application/vnd.kde.kformula kfo\n\
application/vnd.kde.kivio flw\n\
application/vnd.kde.kontour kon\n\
application/vnd.kde.kpresenter kpr kpt\n\
application/vnd.kde.kspread ksp\n\
application/vnd.kde.kword kwd kwt\n\
application/vnd.kenameaapp htke\n\
application/vnd.kidspiration kia\n\
application/vnd.Kinar kne knp sdf\n\
application/vnd.koan skp skd skm skt\n\
application/vnd.kodak-descriptor sse\n\
application/vnd.las las\n\
application/vnd.las.las+json lasjson\n\
application/vnd.las.las+xml lasxml\n\
application/vnd.llamagraphics.life-balance.desktop lbd\n\
application/vnd.llamagraphics.life-balance.exchange+xml lbe\n\
application/vnd.logipipe.circuit+zip lcs lca\n\
application/vnd.loom loom\n\
application/vnd.lotus-1-2-3 123 wk4 wk3 wk1\n\
application/vnd.lotus-approach apr vew\n\
application/vnd.lotus-freelance prz pre\n\
application/vnd.lotus-notes nsf ntf ndl ns4 ns3 ns2 nsh nsg\n\
application/vnd.lotus-organizer or3 or2 org\n\
application/vnd.lotus-screencam scm\n\
application/vnd.lotus-wordpro lwp sam\n\
application/vnd.macports.portpkg portpkg\n\
application/vnd.mapbox-vector-tile mvt\n\
application/vnd.marlin.drm.mdcf mdc\n\
application/vnd.maxar.archive.3tz+zip 3tz\n\
application/vnd.maxmind.maxmind-db mmdb\n\
application/vnd.mcd mcd\n\
application/vnd.medcalcdata mc1\n\
application/vnd.mediastation.cdkey cdkey\n\
application/vnd.medicalholodeck.recordxr rxt\n\
application/vnd.MFER mwf\n\
application/vnd.mfmp mfm\n\
application/vnd.micrografx.flo flo\n\
application/vnd.micrografx.igx igx\n\
application/vnd.mif mif\n\
application/vnd.Mobius.DAF daf\n\
application/vnd.Mobius.DIS dis\n\
application/vnd.Mobius.MBK mbk\n\
application/vnd.Mobius.MQY mqy\n\
application/vnd.Mobius.MSL msl\n\
application/vnd.Mobius.PLC plc\n\
application/vnd.Mobius.TXF txf\n\
application/vnd.mophun.application mpn\n\
application/vnd.mophun.certificate mpc\n\
application/vnd.mozilla.xul+xml xul\n\
application/vnd.ms-3mfdocument 3mf\n\
application/vnd.ms-artgalry cil\n\
application/vnd.ms-asf asf\n\
application/vnd.ms-cab-compressed cab\n\
application/vnd.ms-excel xls xlm xla xlc xlt xlw\n\
application/vnd.ms-excel.addin.macroEnabled.12 xlam\n\
application/vnd.ms-excel.sheet.binary.macroEnabled.12 xlsb\n\
application/vnd.ms-excel.sheet.macroEnabled.12 xlsm\n\
application/vnd.ms-excel.template.macroEnabled.12 xltm\n\
application/vnd.ms-fontobject eot\n\
application/vnd.ms-htmlhelp chm\n\
application/vnd.ms-ims ims\n\
application/vnd.ms-lrm lrm\n\
application/vnd.ms-officetheme thmx\n\
application/vnd.ms-pki.seccat cat\n\
application/vnd.ms-powerpoint ppt pps\n\
application/vnd.ms-powerpoint.addin.macroEnabled.12 ppam\n\
application/vnd.ms-powerpoint.presentation.macroEnabled.12 pptm\n\
application/vnd.ms-powerpoint.slide.macroEnabled.12 sldm\n\
application/vnd.ms-powerpoint.slideshow.macroEnabled.12 ppsm\n\
application/vnd.ms-powerpoint.template.macroEnabled.12 potm\n\
application/vnd.ms-project mpp mpt\n\
application/vnd.ms-tnef tnef tnf\n\
application/vnd.ms-word.document.macroEnabled.12 docm\n\
application/vnd.ms-word.template.macroEnabled.12 dotm\n\
application/vnd.ms-works wcm wdb wks wps\n\
application/vnd.ms-wpl wpl\n\
application/vnd.ms-xpsdocument xps\n\
application/vnd.msa-disk-image msa\n\
application/vnd.mseq mseq\n\
application/vnd.multiad.creator crtr\n\
application/vnd.multiad.creator.cif cif\n\
application/vnd.musician mus\n\
application/vnd.muvee.style msty\n\
application/vnd.mynfc taglet\n\
application/vnd.nebumind.line nebul line\n\
application/vnd.nervana entity request bkm kcm\n\
application/vnd.neurolanguage.nlu nlu\n\
application/vnd.nimn nimn\n\
application/vnd.nintendo.nitro.rom nds\n\
application/vnd.nintendo.snes.rom sfc smc\n\
application/vnd.nitf nitf\n\
application/vnd.noblenet-directory nnd\n\
application/vnd.noblenet-sealer nns\n\
application/vnd.noblenet-web nnw\n\
application/vnd.nokia.n-gage.data ngdat\n\
application/vnd.nokia.radio-preset rpst\n\
application/vnd.nokia.radio-presets rpss\n\
application/vnd.novadigm.EDM edm\n\
application/vnd.novadigm.EDX edx\n\
application/vnd.novadigm.EXT ext\n\
application/vnd.oasis.opendocument.base odb\n\
application/vnd.oasis.opendocument.chart odc\n\
application/vnd.oasis.opendocument.chart-template otc\n\
application/vnd.oasis.opendocument.formula odf\n\
application/vnd.oasis.opendocument.graphics odg\n\
application/vnd.oasis.opendocument.graphics-template otg\n\
application/vnd.oasis.opendocument.image odi\n\
application/vnd.oasis.opendocument.image-template oti\n\
application/vnd.oasis.opendocument.presentation odp\n\
application/vnd.oasis.opendocument.presentation-template otp\n\
application/vnd.oasis.opendocument.spreadsheet ods\n\
application/vnd.oasis.opendocument.spreadsheet-template ots\n\
application/vnd.oasis.opendocument.text odt\n\
application/vnd.oasis.opendocument.text-master odm\n\
application/vnd.oasis.opendocument.text-template ott\n\
application/vnd.oasis.opendocument.text-web oth\n\
application/vnd.olpc-sugar xo\n\
application/vnd.oma.dd2+xml dd2\n\
application/vnd.onepager tam\n\
application/vnd.onepagertamp tamp\n\
application/vnd.onepagertamx tamx\n\
application/vnd.onepagertat tat\n\
application/vnd.onepagertatp tatp\n\
application/vnd.onepagertatx tatx\n\
application/vnd.openblox.game+xml obgx\n\
application/vnd.openblox.game-binary obg\n\
application/vnd.openeye.oeb oeb\n\
application/vnd.openofficeorg.extension oxt\n\
application/vnd.openstreetmap.data+xml osm\n\
application/vnd.openxmlformats-officedocument.presentationml.presentation pptx\n\
application/vnd.openxmlformats-officedocument.presentationml.slide sldx\n\
application/vnd.openxmlformats-officedocument.presentationml.slideshow ppsx\n\
application/vnd.openxmlformats-officedocument.presentationml.template potx\n\
application/vnd.openxmlformats-officedocument.spreadsheetml.sheet xlsx\n\
application/vnd.openxmlformats-officedocument.spreadsheetml.template xltx\n\
application/vnd.openxmlformats-officedocument.wordprocessingml.document docx\n\
application/vnd.openxmlformats-officedocument.wordprocessingml.template dotx\n\
application/vnd.osa.netdeploy ndc\n\
application/vnd.osgeo.mapguide.package mgp\n\
application/vnd.osgi.dp dp\n\
application/vnd.osgi.subsystem esa\n\
application/vnd.oxli.countgraph oxlicg\n\
application/vnd.palm pdb pqa oprc\n\
application/vnd.panoply plp\n\
application/vnd.patentdive dive\n\
application/vnd.pawaafile paw\n\
application/vnd.pg.format str\n\
application/vnd.pg.osasli ei6\n\
application/vnd.piaccess.application-licence pil\n\
application/vnd.picsel efif\n\
application/vnd.pmi.widget wg\n\
application/vnd.pocketlearn plf\n\
application/vnd.powerbuilder6 pbd\n\
application/vnd.preminet preminet\n\
application/vnd.previewsystems.box box vbox\n\
application/vnd.proteus.magazine mgz\n\
application/vnd.psfs psfs\n\
application/vnd.publishare-delta-tree qps\n\
application/vnd.pvi.ptid1 ptid\n\
application/vnd.qualcomm.brew-app-res bar\n\
application/vnd.Quark.QuarkXPress qxd qxt qwd qwt qxl qxb\n\
application/vnd.quobject-quoxdocument quox quiz\n\
application/vnd.rainstor.data tree\n\
application/vnd.rar rar\n\
application/vnd.realvnc.bed bed\n\
application/vnd.recordare.musicxml mxl\n\
application/vnd.resilient.logic rlm reload\n\
application/vnd.rig.cryptonote cryptonote\n\
application/vnd.rim.cod cod\n\
application/vnd.route66.link66+xml link66\n\
application/vnd.sailingtracker.track st\n\
application/vnd.sar SAR\n\
application/vnd.scribus scd sla slaz\n\
application/vnd.sealed.3df s3df\n\
application/vnd.sealed.csf scsf\n\
application/vnd.sealed.doc sdoc sdo s1w\n\
application/vnd.sealed.eml seml sem\n\
application/vnd.sealed.mht smht smh\n\
application/vnd.sealed.ppt sppt s1p\n\
application/vnd.sealed.tiff stif\n\
application/vnd.sealed.xls sxls sxl s1e\n\
application/vnd.sealedmedia.softseal.html stml s1h\n\
application/vnd.sealedmedia.softseal.pdf spdf spd s1a\n\
application/vnd.seemail see\n\
application/vnd.sema sema\n\
application/vnd.semd semd\n\
application/vnd.semf semf\n\
application/vnd.shade-save-file ssv\n\
application/vnd.shana.informed.formdata ifm\n\
application/vnd.shana.informed.formtemplate itp\n\
application/vnd.shana.informed.interchange iif\n\
application/vnd.shana.informed.package ipk\n\
application/vnd.shp shp\n\
application/vnd.shx shx\n\
application/vnd.sigrok.session sr\n\
application/vnd.SimTech-MindMapper twd twds\n\
application/vnd.smaf mmf\n\
application/vnd.smart.notebook notebook\n\
application/vnd.smart.teacher teacher\n\
application/vnd.snesdev-page-table ptrom pt\n\
application/vnd.software602.filler.form+xml fo\n\
application/vnd.software602.filler.form-xml-zip zfo\n\
application/vnd.solent.sdkm+xml sdkm sdkd\n\
application/vnd.spotfire.dxp dxp\n\
application/vnd.spotfire.sfs sfs\n\
application/vnd.sqlite3 sqlite sqlite3\n\
application/vnd.stardivision.calc sdc\n\
application/vnd.stardivision.chart sds\n\
application/vnd.stardivision.draw sda\n\
application/vnd.stardivision.impress sdd\n\
application/vnd.stardivision.math smf\n\
application/vnd.stardivision.writer sdw\n\
application/vnd.stardivision.writer-global sgl\n\
application/vnd.stepmania.package smzip\n\
application/vnd.stepmania.stepchart sm\n\
application/vnd.sun.wadl+xml wadl\n\
application/vnd.sun.xml.calc sxc\n\
application/vnd.sun.xml.calc.template stc\n\
application/vnd.sun.xml.draw sxd\n\
application/vnd.sun.xml.draw.template std\n\
application/vnd.sun.xml.impress sxi\n\
application/vnd.sun.xml.impress.template sti\n\
application/vnd.sun.xml.math sxm\n\
application/vnd.sun.xml.writer sxw\n\
application/vnd.sun.xml.writer.global sxg\n\
application/vnd.sun.xml.writer.template stw\n\
application/vnd.sus-calendar sus susp\n\
application/vnd.sybyl.mol2 ml2 mol2 sy2\n\
application/vnd.sycle+xml scl\n\
application/vnd.syft+json syft.json\n\
application/vnd.symbian.install sis\n\
application/vnd.syncml+xml xsm\n\
application/vnd.syncml.dm+wbxml bdm\n\
application/vnd.syncml.dm+xml xdm\n\
application/vnd.syncml.dmddf+xml ddf\n\
application/vnd.tao.intent-module-archive tao\n\
application/vnd.tcpdump.pcap pcap cap dmp\n\
application/vnd.theqvd qvd\n\
application/vnd.think-cell.ppttc+json ppttc\n\
application/vnd.tml vfr viaframe\n\
application/vnd.tmobile-livetv tmo\n\
application/vnd.trid.tpt tpt\n\
application/vnd.triscape.mxs mxs\n\
application/vnd.trueapp tra\n\
application/vnd.ufdl ufdl ufd frm\n\
application/vnd.uiq.theme utz\n\
application/vnd.umajin umj\n\
application/vnd.unity unityweb\n\
application/vnd.uoml+xml uoml uo\n\
application/vnd.uri-map urim urimap\n\
application/vnd.valve.source.material vmt\n\
application/vnd.vcx vcx\n\
application/vnd.vd-study mxi study-inter model-inter\n\
application/vnd.vectorworks vwx\n\
application/vnd.veritone.aion+json aion vtnstd\n\
application/vnd.veryant.thin istc isws\n\
application/vnd.ves.encrypted VES\n\
application/vnd.vidsoft.vidconference vsc\n\
application/vnd.visio vsd vst vsw vss\n\
application/vnd.visionary vis\n\
application/vnd.vsf vsf\n\
application/vnd.wap.sic sic\n\
application/vnd.wap.slc slc\n\
application/vnd.wap.wbxml wbxml\n\
application/vnd.wap.wmlc wmlc\n\
application/vnd.wap.wmlscriptc wmlsc\n\
application/vnd.wasmflow.wafl wafl\n\
application/vnd.webturbo wtb\n\
application/vnd.wfa.p2p p2p\n\
application/vnd.wfa.wsc wsc\n\
application/vnd.wmc wmc\n\
application/vnd.wolfram.mathematica nb\n\
application/vnd.wolfram.mathematica.package m\n\
application/vnd.wolfram.player nbp\n\
application/vnd.wordperfect wpd\n\
application/vnd.wqd wqd\n\
application/vnd.wt.stf stf\n\
application/vnd.wv.csp+wbxml wv\n\
application/vnd.xara xar\n\
application/vnd.xfdl xfdl xfd\n\
application/vnd.xmpie.cpkg cpkg\n\
application/vnd.xmpie.dpkg dpkg\n\
application/vnd.xmpie.ppkg ppkg\n\
application/vnd.xmpie.xlim xlim\n\
application/vnd.yamaha.hv-dic hvd\n\
application/vnd.yamaha.hv-script hvs\n\
application/vnd.yamaha.hv-voice hvp\n\
application/vnd.yamaha.openscoreformat osf\n\
application/vnd.yamaha.smaf-audio saf\n\
application/vnd.yamaha.smaf-phrase spf\n\
application/vnd.yaoweme yme\n\
application/vnd.yellowriver-custom-menu cmp\n\
application/vnd.zul zir zirz\n\
application/vnd.zzazz.deck+xml zaz\n\
application/voicexml+xml vxml\n\
application/voucher-cms+json vcj\n\
application/wasm wasm\n\
application/watcherinfo+xml wif\n\
application/widget wgt\n\
application/wsdl+xml wsdl\n\
application/wspolicy+xml wspolicy\n\
application/x-123 wk\n\
application/x-7z-compressed 7z\n\
application/x-abiword abw\n\
application/x-apple-diskimage dmg\n\
application/x-bcpio bcpio\n\
application/x-bittorrent torrent\n\
application/x-cdf cdf cda\n\
application/x-cdlink vcd\n\
application/x-comsol mph\n\
application/x-cpio cpio\n\
application/x-csh csh\n\
application/x-director dcr dir dxr\n\
application/x-doom wad\n\
application/x-dvi dvi\n\
application/x-font pfa pfb gsf\n\
application/x-font-pcf pcf pcf.Z\n\
application/x-freemind mm\n\
application/x-ganttproject gan\n\
application/x-gnumeric gnumeric\n\
application/x-go-sgf sgf\n\
application/x-graphing-calculator gcf\n\
application/x-gtar gtar\n\
application/x-gtar-compressed tgz taz\n\
application/x-hdf hdf\n\
application/x-hwp hwp\n\
application/x-ica ica\n\
application/x-info info\n\
application/x-internet-signup ins isp\n\
application/x-iphone iii\n\
application/x-iso9660-image iso\n\
application/x-java-jnlp-file jnlp\n\
application/x-jmol jmz\n\
application/x-killustrator kil\n\
application/x-latex latex\n\
application/x-lha lha\n\
application/x-lyx lyx\n\
application/x-lzh lzh\n\
application/x-lzx lzx\n\
application/x-maker frm maker frame fm fb book fbdoc\n\
application/x-ms-wmd wmd\n\
application/x-ms-wmz wmz\n\
application/x-msdos-program com exe bat dll\n\
application/x-msi msi\n\
application/x-netcdf nc\n\
application/x-ns-proxy-autoconfig pac\n\
application/x-nwc nwc\n\
application/x-object o\n\
application/x-oz-application oza\n\
application/x-pkcs7-certreqresp p7r\n\
application/x-python-code pyc pyo\n\
application/x-qgis qgs shp shx\n\
application/x-quicktimeplayer qtl\n\
application/x-rdp rdp\n\
application/x-redhat-package-manager rpm\n\
application/x-rss+xml rss\n\
application/x-ruby rb\n\
application/x-scilab sci sce\n\
application/x-scilab-xcos xcos\n\
application/x-sh sh\n\
application/x-shar shar\n\
application/x-silverlight scr\n\
application/x-stuffit sit sitx\n\
application/x-sv4cpio sv4cpio\n\
application/x-sv4crc sv4crc\n\
application/x-tar tar\n\
application/x-tcl tcl\n\
application/x-tex-gf gf\n\
application/x-tex-pk pk\n\
application/x-texinfo texinfo texi\n\
application/x-trash ~ % bak old sik\n\
application/x-troff-man man\n\
application/x-troff-me me\n\
application/x-troff-ms ms\n\
application/x-ustar ustar\n\
application/x-wais-source src\n\
application/x-wingz wz\n\
application/x-x509-ca-cert crt\n\
application/x-xfig fig\n\
application/x-xpinstall xpi\n\
application/x-xz xz\n\
application/xcap-att+xml xav\n\
application/xcap-caps+xml xca\n\
application/xcap-diff+xml xdf\n\
application/xcap-el+xml xel\n\
application/xcap-error+xml xer\n\
application/xcap-ns+xml xns\n\
application/xfdf xfdf\n\
application/xhtml+xml xhtml xhtm xht\n\
application/xliff+xml xlf\n\
application/xml xml\n\
application/xml-dtd dtd mod\n\
application/xml-external-parsed-entity ent\n\
application/xop+xml xop\n\
application/xslt+xml xsl xslt\n\
application/xspf+xml xspf\n\
application/xv+xml mxml xhvml xvml xvm\n\
application/yang yang\n\
application/yin+xml yin\n\
application/zip zip\n\
application/zstd zst\n\
audio/32kadpcm 726\n\
audio/aac adts aac ass\n\
audio/ac3 ac3\n\
audio/AMR amr AMR\n\
audio/AMR-WB awb AWB\n\
audio/annodex axa\n\
audio/asc acn\n\
audio/ATRAC-ADVANCED-LOSSLESS aal\n\
audio/ATRAC-X atx\n\
audio/ATRAC3 at3 aa3 omg\n\
audio/basic au snd\n\
audio/csound csd orc sco\n\
audio/dls dls\n\
audio/EVRC evc\n\
audio/EVRC-QCP qcp QCP\n\
audio/EVRCB evb\n\
audio/EVRCNW enw\n\
audio/EVRCWB evw\n\
audio/flac flac\n\
audio/iLBC lbc\n\
audio/L16 l16\n\
audio/mhas mhas\n\
audio/mobile-xmf mxmf\n\
audio/mp4 m4a\n\
audio/mpeg mpga mpega mp1 mp2 mp3\n\
audio/mpegurl m3u\n\
audio/ogg oga ogg opus spx\n\
audio/prs.sid sid psid\n\
audio/SMV smv\n\
audio/sofa sofa\n\
audio/sp-midi mid\n\
audio/usac loas xhe\n\
audio/vnd.audiokoz koz\n\
audio/vnd.dece.audio uva uvva\n\
audio/vnd.digital-winds eol\n\
audio/vnd.dolby.mlp mlp\n\
audio/vnd.dts dts\n\
audio/vnd.dts.hd dtshd\n\
audio/vnd.everad.plj plj\n\
audio/vnd.lucent.voice lvp\n\
audio/vnd.ms-playready.media.pya pya\n\
audio/vnd.nortel.vbk vbk\n\
audio/vnd.nuera.ecelp4800 ecelp4800\n\
audio/vnd.nuera.ecelp7470 ecelp7470\n\
audio/vnd.nuera.ecelp9600 ecelp9600\n\
audio/vnd.presonus.multitrack multitrack\n\
audio/vnd.rip rip\n\
audio/vnd.sealedmedia.softseal.mpeg smp3 smp s1m\n\
audio/x-aiff aif aiff aifc\n\
audio/x-gsm gsm\n\
audio/x-ms-wax wax\n\
audio/x-ms-wma wma\n\
audio/x-pn-realaudio ra rm ram\n\
audio/x-scpls pls\n\
audio/x-sd2 sd2\n\
audio/x-wav wav\n\
chemical/x-alchemy alc\n\
chemical/x-cache cac cache\n\
chemical/x-cache-csf csf\n\
chemical/x-cactvs-binary cbin cascii ctab\n\
chemical/x-cdx cdx\n\
chemical/x-chem3d c3d\n\
chemical/x-chemdraw chm\n\
chemical/x-cif cif\n\
chemical/x-cmdf cmdf\n\
chemical/x-cml cml\n\
chemical/x-compass cpa\n\
chemical/x-crossfire bsd\n\
chemical/x-csml csml csm\n\
chemical/x-ctx ctx\n\
chemical/x-cxf cxf cef\n\
chemical/x-embl-dl-nucleotide emb embl\n\
chemical/x-galactic-spc spc\n\
chemical/x-gamess-input inp gam gamin\n\
chemical/x-gaussian-checkpoint fch fchk\n\
chemical/x-gaussian-cube cub\n\
chemical/x-gaussian-input gau gjc gjf\n\
chemical/x-gaussian-log gal\n\
chemical/x-gcg8-sequence gcg\n\
chemical/x-genbank gen\n\
chemical/x-hin hin\n\
chemical/x-isostar istr ist\n\
chemical/x-jcamp-dx jdx dx\n\
chemical/x-kinemage kin\n\
chemical/x-macmolecule mcm\n\
chemical/x-macromodel-input mmod\n\
chemical/x-mdl-molfile mol\n\
chemical/x-mdl-rdfile rd\n\
chemical/x-mdl-rxnfile rxn\n\
chemical/x-mdl-sdfile sd sdf\n\
chemical/x-mdl-tgf tgf\n\
chemical/x-mmcif mcif\n\
chemical/x-molconn-Z b\n\
chemical/x-mopac-graph gpt\n\
chemical/x-mopac-input mop mopcrt mpc zmt\n\
chemical/x-mopac-out moo\n\
chemical/x-mopac-vib mvb\n\
chemical/x-ncbi-asn1 asn\n\
chemical/x-ncbi-asn1-ascii prt\n\
chemical/x-ncbi-asn1-binary val aso\n\
chemical/x-ncbi-asn1-spec asn\n\
chemical/x-pdb pdb\n\
chemical/x-rosdal ros\n\
chemical/x-swissprot sw\n\
chemical/x-vamas-iso14976 vms\n\
chemical/x-vmd vmd\n\
chemical/x-xtel xtel\n\
chemical/x-xyz xyz\n\
font/collection ttc\n\
font/otf otf\n\
font/ttf ttf\n\
font/woff woff\n\
font/woff2 woff2\n\
image/aces exr\n\
image/apng apng\n\
image/avci avci\n\
image/avcs avcs\n\
image/avif avif hif\n\
image/bmp bmp\n\
image/cgm cgm\n\
image/dicom-rle drle\n\
image/dpx dpx\n\
image/emf emf\n\
image/fits fits fit fts\n\
image/gif gif\n\
image/heic heic\n\
image/heic-sequence heics\n\
image/heif heif\n\
image/heif-sequence heifs\n\
image/hej2k hej2\n\
image/hsj2 hsj2\n\
image/ief ief\n\
image/jls jls\n\
image/jp2 jp2 jpg2\n\
image/jpeg jpeg jpg jpe jfif\n\
image/jph jph\n\
image/jphc jhc jphc\n\
image/jpm jpm jpgm\n\
image/jpx jpx jpf\n\
image/jxl jxl\n\
image/jxr jxr\n\
image/jxrA jxra\n\
image/jxrS jxrs\n\
image/jxs jxs\n\
image/jxsc jxsc\n\
image/jxsi jxsi\n\
image/jxss jxss\n\
image/ktx ktx\n\
image/ktx2 ktx2\n\
image/png png\n\
image/prs.btif btif btf\n\
image/prs.pti pti\n\
image/svg+xml svg svgz\n\
image/tiff tiff tif\n\
image/tiff-fx tfx\n\
image/vnd.adobe.photoshop psd\n\
image/vnd.airzip.accelerator.azv azv\n\
image/vnd.dece.graphic uvi uvvi uvg uvvg\n\
image/vnd.djvu djvu djv\n\
image/vnd.dwg dwg\n\
image/vnd.dxf dxf\n\
image/vnd.fastbidsheet fbs\n\
image/vnd.fpx fpx\n\
image/vnd.fst fst\n\
image/vnd.fujixerox.edmics-mmr mmr\n\
image/vnd.fujixerox.edmics-rlc rlc\n\
image/vnd.globalgraphics.pgb PGB pgb\n\
image/vnd.microsoft.icon ico\n\
image/vnd.ms-modi mdi\n\
image/vnd.pco.b16 b16\n\
image/vnd.radiance hdr rgbe xyze\n\
image/vnd.sealed.png spng spn s1n\n\
image/vnd.sealedmedia.softseal.gif sgif sgi s1g\n\
image/vnd.sealedmedia.softseal.jpg sjpg sjp s1j\n\
image/vnd.tencent.tap tap\n\
image/vnd.valve.source.texture vtf\n\
image/vnd.wap.wbmp wbmp\n\
image/vnd.xiff xif\n\
image/vnd.zbrush.pcx pcx\n\
image/webp webp\n\
image/wmf wmf\n\
image/x-canon-cr2 cr2\n\
image/x-canon-crw crw\n\
image/x-cmu-raster ras\n\
image/x-coreldraw cdr\n\
image/x-coreldrawpattern pat\n\
image/x-coreldrawtemplate cdt\n\
image/x-corelphotopaint cpt\n\
image/x-epson-erf erf\n\
image/x-jg art\n\
image/x-jng jng\n\
image/x-nikon-nef nef\n\
image/x-olympus-orf orf\n\
image/x-portable-anymap pnm\n\
image/x-portable-bitmap pbm\n\
image/x-portable-graymap pgm\n\
image/x-portable-pixmap ppm\n\
image/x-rgb rgb\n\
image/x-xbitmap xbm\n\
image/x-xcf xcf\n\
image/x-xpixmap xpm\n\
image/x-xwindowdump xwd\n\
message/global u8msg\n\
message/global-delivery-status u8dsn\n\
message/global-disposition-notification u8mdn\n\
message/global-headers u8hdr\n\
message/rfc822 eml mail art\n\
model/gltf+json gltf\n\
model/gltf-binary glb\n\
model/iges igs iges\n\
model/JT jt\n\
model/mesh msh mesh silo\n\
model/mtl mtl\n\
model/obj obj\n\
model/prc prc\n\
model/step stp step\n\
model/step+xml stpx\n\
model/step+zip stpz\n\
model/step-xml+zip stpxz\n\
model/stl stl\n\
model/u3d u3d\n\
model/vnd.cld cld\n\
model/vnd.collada+xml dae\n\
model/vnd.dwf dwf\n\
model/vnd.gdl gdl gsm win dor lmp rsm msm ism\n\
model/vnd.gtw gtw\n\
model/vnd.moml+xml moml\n\
model/vnd.mts mts\n\
model/vnd.opengex ogex\n\
model/vnd.parasolid.transmit.binary x_b xmt_bin\n\
model/vnd.parasolid.transmit.text x_t xmt_txt\n\
model/vnd.pytha.pyox pyox\n\
model/vnd.sap.vds vds\n\
model/vnd.usda usda\n\
model/vnd.usdz+zip usdz\n\
model/vnd.valve.source.compiled-map bsp\n\
model/vnd.vtu vtu\n\
model/vrml wrl vrm vrml\n\
model/x3d+fastinfoset x3db\n\
model/x3d+xml x3d x3dz\n\
model/x3d-vrml x3dv x3dvz\n\
multipart/vnd.bint.med-plus bmed\n\
multipart/voice-message vpm\n\
text/cache-manifest appcache manifest\n\
text/calendar ics ifb\n\
text/cql CQL\n\
text/css css\n\
text/csv csv\n\
text/csv-schema csvs\n\
text/dns soa zone\n\
text/gff3 gff3\n\
text/html html htm shtml\n\
text/javascript es js mjs\n\
text/jcr-cnd cnd\n\
text/markdown md markdown\n\
text/mizar miz\n\
text/n3 n3\n\
text/plain txt text pot brf srt\n\
text/provenance-notation provn\n\
text/prs.fallenstein.rst rst\n\
text/prs.lines.tag tag dsc\n\
text/SGML sgml sgm\n\
text/shaclc shaclc shc\n\
text/shex shex\n\
text/spdx spdx\n\
text/tab-separated-values tsv\n\
text/texmacs tm\n\
text/troff t tr roff\n\
text/turtle ttl\n\
text/uri-list uris uri\n\
text/vcard vcf vcard\n\
text/vnd.a a\n\
text/vnd.abc abc\n\
text/vnd.ascii-art ascii\n\
text/vnd.curl curl\n\
text/vnd.debian.copyright copyright\n\
text/vnd.DMClientScript dms\n\
text/vnd.esmertec.theme-descriptor jtd\n\
text/vnd.exchangeable VFK\n\
text/vnd.familysearch.gedcom ged\n\
text/vnd.ficlab.flt flt\n\
text/vnd.fly fly\n\
text/vnd.fmi.flexstor flx\n\
text/vnd.graphviz gv dot\n\
text/vnd.hans hans\n\
text/vnd.hgl hgl\n\
text/vnd.in3d.3dml 3dml 3dm\n\
text/vnd.in3d.spot spot spo\n\
text/vnd.ms-mediapackage mpf\n\
text/vnd.net2phone.commcenter.command ccc\n\
text/vnd.senx.warpscript mc2\n\
text/vnd.sosi sos\n\
text/vnd.sun.j2me.app-descriptor jad\n\
text/vnd.trolltech.linguist ts\n\
text/vnd.wap.si si\n\
text/vnd.wap.sl sl\n\
text/vnd.wap.wml wml\n\
text/vnd.wap.wmlscript wmls\n\
text/vtt vtt\n\
text/wgsl wgsl\n\
text/x-bibtex bib\n\
text/x-boo boo\n\
text/x-c++hdr h++ hpp hxx hh\n\
text/x-c++src c++ cpp cxx cc\n\
text/x-chdr h\n\
text/x-component htc\n\
text/x-csh csh\n\
text/x-csrc c\n\
text/x-diff diff patch\n\
text/x-dsrc d\n\
text/x-haskell hs\n\
text/x-java java\n\
text/x-lilypond ly\n\
text/x-literate-haskell lhs\n\
text/x-moc moc\n\
text/x-pascal p pas\n\
text/x-pcs-gcd gcd\n\
text/x-perl pl pm\n\
text/x-python py\n\
text/x-scala scala\n\
text/x-setext etx\n\
text/x-sfv sfv\n\
text/x-sh sh\n\
text/x-tcl tcl tk\n\
text/x-tex tex ltx sty cls\n\
text/x-vcalendar vcs\n\
video/annodex axv\n\
video/dv dif dv\n\
video/fli fli\n\
video/gl gl\n\
video/iso.segment m4s\n\
video/mj2 mj2 mjp2\n\
video/mp4 mp4 mpg4 m4v\n\
video/mpeg mpeg mpg mpe m1v m2v\n\
video/ogg ogv\n\
video/quicktime qt mov\n\
video/vnd.dece.hd uvh uvvh\n\
video/vnd.dece.mobile uvm uvvm\n\
video/vnd.dece.mp4 uvu uvvu\n\
video/vnd.dece.pd uvp uvvp\n\
video/vnd.dece.sd uvs uvvs\n\
video/vnd.dece.video uvv uvvv\n\
video/vnd.dvb.file dvb\n\
video/vnd.fvt fvt\n\
video/vnd.mpegurl mxu m4u\n\
video/vnd.ms-playready.media.pyv pyv\n\
video/vnd.nokia.interleaved-multimedia nim\n\
video/vnd.radgamettools.bink bik bk2\n\
video/vnd.radgamettools.smacker smk\n\
video/vnd.sealed.mpeg1 smpg s11\n\
video/vnd.sealed.mpeg4 s14\n\
video/vnd.sealed.swf sswf ssw\n\
video/vnd.sealedmedia.softseal.mov smov smo s1q\n\
video/vnd.vivo viv\n\
video/vnd.youtube.yt yt\n\
video/webm webm\n\
video/x-flv flv\n\
video/x-la-asf lsf lsx\n\
video/x-matroska mpv mkv\n\
video/x-mng mng\n\
video/x-ms-wm wm\n\
video/x-ms-wmv wmv\n\
video/x-ms-wmx wmx\n\
video/x-ms-wvx wvx\n\
video/x-msvideo avi\n\
video/x-sgi-movie movie\n\
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_web_types() {
        let t = MimeTable::builtin();
        let expect = [
            ("html", "text/html"),
            ("htm", "text/html"),
            ("txt", "text/plain"),
            ("css", "text/css"),
            ("js", "text/javascript"),
            ("mjs", "text/javascript"),
            ("json", "application/json"),
            ("xml", "application/xml"),
            ("svg", "image/svg+xml"),
            ("svgz", "image/svg+xml"),
            ("png", "image/png"),
            ("jpg", "image/jpeg"),
            ("jpeg", "image/jpeg"),
            ("jpe", "image/jpeg"),
            ("gif", "image/gif"),
            ("webp", "image/webp"),
            ("ico", "image/vnd.microsoft.icon"),
            ("pdf", "application/pdf"),
            ("zip", "application/zip"),
            ("woff", "font/woff"),
            ("woff2", "font/woff2"),
            ("ttf", "font/ttf"),
            ("otf", "font/otf"),
            ("eot", "application/vnd.ms-fontobject"),
            ("mp4", "video/mp4"),
            ("webm", "video/webm"),
            ("mp3", "audio/mpeg"),
            ("ogg", "audio/ogg"),
            ("wasm", "application/wasm"),
            ("csv", "text/csv"),
            ("md", "text/markdown"),
            ("gz", "application/gzip"),
            ("tar", "application/x-tar"),
            ("avif", "image/avif"),
            ("bmp", "image/bmp"),
            ("tif", "image/tiff"),
            ("tiff", "image/tiff"),
            ("rss", "application/x-rss+xml"),
            ("atom", "application/atom+xml"),
            ("webmanifest", "application/manifest+json"),
            ("xhtml", "application/xhtml+xml"),
            ("ics", "text/calendar"),
            ("apng", "image/apng"),
        ];
        for (ext, ctype) in expect {
            assert_eq!(t.lookup(ext), Some(ctype), "{ext}");
        }
    }

    #[test]
    fn lookup_is_case_insensitive_and_takes_a_dot() {
        let t = MimeTable::builtin();
        assert_eq!(t.lookup("HTML"), Some("text/html"));
        assert_eq!(t.lookup(".Png"), Some("image/png"));
        assert_eq!(t.lookup("nosuchext"), None);
        assert_eq!(t.lookup(""), None);
    }

    #[test]
    fn insert_and_remove_do_not_touch_clones() {
        let base = MimeTable::builtin();
        let mut t = base.clone();
        t.insert(".PHP", "application/x-httpd-php");
        t.insert("html", "text/plain");
        t.remove("css");
        t.remove("nosuchext");
        assert_eq!(t.lookup("php"), Some("application/x-httpd-php"));
        assert_eq!(t.lookup("html"), Some("text/plain"));
        assert_eq!(t.lookup("css"), None);
        assert_eq!(base.lookup("css"), Some("text/css"));
        assert_eq!(base.lookup("html"), Some("text/html"));
        t.insert("css", "text/x-css");
        assert_eq!(t.lookup("css"), Some("text/x-css"));
    }

    #[test]
    fn file_names_follow_mod_mime() {
        let t = MimeTable::builtin();
        assert_eq!(t.type_for_file_name("index.html"), Some("text/html"));
        assert_eq!(t.type_for_file_name("a.html.en"), Some("text/html"));
        assert_eq!(t.type_for_file_name("a.tar.gz"), Some("application/gzip"));
        assert_eq!(t.type_for_file_name("a.gz.tar"), Some("application/x-tar"));
        assert_eq!(t.type_for_file_name("/x.y/dir/README"), None);
        assert_eq!(t.type_for_file_name("/x/dir/file.PNG"), Some("image/png"));
        assert_eq!(t.type_for_file_name("bad..html"), Some("text/html"));
        assert_eq!(t.type_for_file_name("html"), None);
        assert_eq!(t.type_for_file_name("txt.nosuch"), None);
        assert_eq!(t.type_for_file_name(".png"), Some("image/png"));
        assert_eq!(t.type_for_file_name("a."), None);
    }

    #[test]
    fn mime_types_text_later_line_wins() {
        let t = MimeTable::from_mime_types("# comment\ntext/a aa bb\n\ntext/b BB\nlonely/type\n");
        assert_eq!(t.lookup("aa"), Some("text/a"));
        assert_eq!(t.lookup("bb"), Some("text/b"));
        assert_eq!(MimeTable::empty().lookup("html"), None);
    }
}
